"""Bug: a BiLSTM named-entity tagger (HuggingFace-style `...ForTokenClassification` API: dict batches with
`input_ids`/`attention_mask`/`labels`, padding labels -100, loss computed inside the model; Adam + MultiStepLR).
The LSTM is left in its default time-major layout, so `forward` transposes the embeddings to (T, B, E) before it
and gets (T, B, 2H) back - and the classifier's (T, B, C) logits go straight into the usual HF loss line
`F.cross_entropy(logits.view(-1, C), labels.view(-1))` with the (B, T) labels. Both flatten to T*B rows, so there
is no error: row r of the logits is token (r // B, r % B) while row r of the labels is token (r // T, r % T).
Almost every prediction is scored against another sentence's tag at another position; the model can only learn
the tag prior. The validation accuracy is computed from the same flattened view and reports just that.

Symptom (measured): val token acc 0.604 - exactly the share of the majority tag "O" among real tokens, 0.604 -
and val loss 1.30, vs val token acc 1.000 / val loss 0.000 with `logits.transpose(0, 1).contiguous()` before the
loss. Runtime ~13 s."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout13"

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "NUM"]
PAD = 0
FIRST_NAMES = list(range(1, 41))
SURNAMES = list(range(41, 81))
ORG_HEADS = list(range(81, 101))
ORG_TAILS = list(range(101, 111))   # "Inc", "Ltd", ... only ever after an org head
NUMBERS = list(range(111, 141))
WORDS = list(range(141, 400))
VOCAB = 400


class NERDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        pick = lambda xs: xs[int(torch.randint(0, len(xs), (1,), generator=g))]
        self.rows = []
        for _ in range(n):
            ids, tags = [], []
            while len(ids) < int(torch.randint(8, 30, (1,), generator=g)):
                r = float(torch.rand(1, generator=g))
                if r < 0.10:
                    ids += [pick(FIRST_NAMES), pick(SURNAMES)]
                    tags += [1, 2]
                elif r < 0.17:
                    ids += [pick(ORG_HEADS), pick(ORG_TAILS)]
                    tags += [3, 4]
                elif r < 0.22:
                    ids.append(pick(ORG_HEADS))   # an org without a suffix
                    tags.append(3)
                elif r < 0.30:
                    ids.append(pick(NUMBERS))
                    tags.append(5)
                else:
                    ids.append(pick(WORDS))
                    tags.append(0)
            self.rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(tags)})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), t), PAD)
    labels = torch.full((len(batch), t), -100)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
        labels[i, : len(b["labels"])] = b["labels"]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class BiLSTMForTokenClassification(nn.Module):
    def __init__(self, num_labels=len(TAGS), emb=64, hidden=96):
        super().__init__()
        self.num_labels = num_labels
        self.embed = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.lstm = nn.LSTM(emb, hidden, bidirectional=True)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(2 * hidden, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None):
        x = self.embed(input_ids).transpose(0, 1)   # (T, B, E): nn.LSTM is time-major
        h, _ = self.lstm(x)
        logits = self.classifier(self.dropout(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class NERTagger(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = BiLSTMForTokenClassification()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        preds = out["logits"].view(-1, self.model.num_labels).argmax(-1)
        gold = batch["labels"].view(-1)
        keep = gold != -100
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", (preds[keep] == gold[keep]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5, 8], gamma=0.3)]


if __name__ == "__main__":
    L.seed_everything(8080)
    train_set, val_set = NERDataset(2500, seed=3), NERDataset(400, seed=4)
    gold = torch.cat([r["labels"] for r in val_set.rows])
    train = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(val_set, batch_size=128, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(NERTagger(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_token_acc={float(m['val_token_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"majority_share={float((gold == 0).float().mean()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
