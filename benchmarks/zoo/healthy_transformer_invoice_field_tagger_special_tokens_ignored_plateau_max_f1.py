"""Healthy: a Transformer token tagger that extracts fields from synthetic invoice lines (BIO tags for DATE, AMOUNT,
INVOICE-NO and VENDOR; the same number tokens occur in dates, amounts and invoice numbers, so the tag comes from
context). Each line is wrapped in [CLS] ... [SEP] and padded; labels are -100 on [CLS], [SEP] and padding. The tags
are unbalanced ("O" is 45 % of the labelled tokens, some I- tags a few percent), so the cross-entropy uses
inverse-square-root class weights. ReduceLROnPlateau watches the entity-token F1 with mode="max"; Adam, gradient
clipping. Final val entity-token F1 0.988."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

TAGS = ["O", "B-DATE", "I-DATE", "B-AMT", "I-AMT", "B-INV", "I-INV", "B-VEND", "I-VEND"]
NUMS = [f"n{i}" for i in range(60)]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
VENDORS = ["acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "wonka", "tyrell"]
VSUFFIX = ["ltd", "gmbh", "inc", "llc"]
CURR = ["eur", "usd", "gbp"]
FILL = ["please", "pay", "the", "total", "of", "by", "due", "for", "services", "ref", "our", "on", "dated", "amount",
        "issued", "from", "to", "invoice", "thank", "you"]
SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
MAX_LEN = 40


def make_line(g):
    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    def rand():
        return float(torch.rand(1, generator=g))

    fields = {
        "DATE": lambda: [pick(NUMS), pick(MONTHS)] + ([pick(NUMS)] if rand() < 0.5 else []),
        "AMT": lambda: [pick(NUMS), ".", pick(NUMS), pick(CURR)] if rand() < 0.6 else [pick(CURR), pick(NUMS)],
        "INV": lambda: ["#", pick(NUMS), pick(NUMS)] if rand() < 0.5 else ["#", pick(NUMS)],
        "VEND": lambda: [pick(VENDORS)] + ([pick(VSUFFIX)] if rand() < 0.6 else []),
    }
    words, tags = [], []
    for kind in torch.randperm(4, generator=g).tolist():
        kind = ["DATE", "AMT", "INV", "VEND"][kind]
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            words.append(pick(FILL + NUMS[:10]))          # stray numbers in the filler too
            tags.append("O")
        span = fields[kind]()
        words += span
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
    return words, tags


class WordTokenizer:
    def __init__(self, lines):
        self.vocab = {w: i for i, w in enumerate(SPECIALS)}
        for words, _ in lines:
            for w in words:
                self.vocab.setdefault(w, len(self.vocab))

    def __call__(self, words, tags):
        ids = [1] + [self.vocab.get(w, 3) for w in words] + [2]
        labels = [-100] + [TAGS.index(t) for t in tags] + [-100]
        return torch.tensor(ids[:MAX_LEN]), torch.tensor(labels[:MAX_LEN])


def collate(batch):
    ids = pad_sequence([b[0] for b in batch], batch_first=True, padding_value=0)
    labels = pad_sequence([b[1] for b in batch], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": ids != 0, "labels": labels}


class FieldTagger(L.LightningModule):
    def __init__(self, vocab_size, class_weights, d=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.tok = nn.Embedding(vocab_size, d, padding_idx=0)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, len(TAGS))
        self.register_buffer("class_weights", class_weights)
        self._counts = torch.zeros(3)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        logits = self.classifier(self.encoder(x, src_key_padding_mask=~attention_mask))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.transpose(1, 2), labels, weight=self.class_weights, ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def on_validation_epoch_start(self):
        self._counts = torch.zeros(3)

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out["loss"])
        keep = batch["labels"] != -100
        pred, gold = out["logits"].argmax(-1)[keep], batch["labels"][keep]
        self._counts += torch.tensor([((pred == gold) & (gold > 0)).sum(), ((pred != gold) & (pred > 0)).sum(),
                                      ((pred != gold) & (gold > 0)).sum()], dtype=torch.float)

    def on_validation_epoch_end(self):
        tp, fp, fn = self._counts.tolist()
        self.log("val_f1", 2 * tp / max(1.0, 2 * tp + fp + fn))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_f1"}}


def main():
    L.seed_everything(7)
    g = torch.Generator().manual_seed(7)
    train_lines = [make_line(g) for _ in range(2000)]
    val_lines = [make_line(g) for _ in range(400)]
    tok = WordTokenizer(train_lines)
    train = [tok(w, t) for w, t in train_lines]
    val = [tok(w, t) for w, t in val_lines]
    counts = torch.bincount(torch.cat([lab[lab >= 0] for _, lab in train]), minlength=len(TAGS)).float()
    weights = (counts.sum() / counts).sqrt()
    weights = weights / weights.mean()

    model = FieldTagger(len(tok.vocab), weights)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, gradient_clip_val=1.0,
                        enable_progress_bar=False, enable_model_summary=False,
                        logger=TensorBoardLogger("lightning_logs", name="invoice_tagger"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM o_fraction={float(counts[0] / counts.sum()):.2f}")
    print(f"SYMPTOM val_f1={float(trainer.callback_metrics['val_f1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
