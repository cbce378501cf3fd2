"""Bug: the two-stage recipe of fine-tuning a pretrained encoder, both stages in one script. Stage 1 pretrains a
small BERT-style encoder with masked-language modelling on 6000 unlabeled sentences of a hand-built topical corpus
(word-level tokenizer, dict batches, loss inside the model). Stage 2 fine-tunes it for topic classification on only
60 labeled sentences with gradual unfreezing: the body is frozen for the first epochs so the new head settles, then
`on_train_epoch_start` unfreezes it to train at a lower lr than the head (AdamW, no weight decay on biases/LayerNorm,
linear warm-up and decay). `configure_optimizers` follows the "only pass trainable parameters" idiom
(`if p.requires_grad`) - but it runs once, while the body is still frozen, so the body group is empty: after the
unfreeze the encoder gets gradients every step and no optimizer ever applies them. Symptom: val acc 0.56 vs 0.93
when the body's parameters are put in their group regardless of requires_grad."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout19"
N_TOPICS, WORDS_PER_TOPIC, N_COMMON = 6, 30, 20
PAD, UNK, MASK = 0, 1, 2


def make_sentences(n, g):
    """Each sentence mixes words of one topic with common function words; the label is the topic."""
    out = []
    for _ in range(n):
        topic = int(torch.randint(N_TOPICS, (1,), generator=g))
        length = int(torch.randint(8, 14, (1,), generator=g))
        words = []
        for _ in range(length):
            if torch.rand(1, generator=g) < 0.5:
                words.append(f"t{topic}_{int(torch.randint(WORDS_PER_TOPIC, (1,), generator=g))}")
            else:
                words.append(f"c{int(torch.randint(N_COMMON, (1,), generator=g))}")
        out.append((" ".join(words), topic))
    return out


class WordTokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"[PAD]": PAD, "[UNK]": UNK, "[MASK]": MASK, **{w: i + 3 for i, w in enumerate(words)}}

    def __call__(self, texts):
        ids = [[self.vocab.get(w, UNK) for w in t.split()] for t in texts]
        T = max(map(len, ids))
        input_ids = torch.full((len(ids), T), PAD)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
        return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long()}


class Encoder(nn.Module):
    def __init__(self, vocab_size, d=64, layers=2):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, d, padding_idx=PAD)
        self.position = nn.Embedding(32, d)
        self.norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        nn.init.normal_(self.embeddings.weight, std=0.02)

    def forward(self, input_ids, attention_mask):
        x = self.embeddings(input_ids) + self.position(torch.arange(input_ids.shape[1], device=input_ids.device))
        return self.encoder(self.norm(x), src_key_padding_mask=attention_mask == 0)


class LitMLM(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.encoder = Encoder(vocab_size)
        self.mlm_head = nn.Linear(64, vocab_size)

    def training_step(self, batch, batch_idx):
        ids = batch["input_ids"].clone()
        chosen = (torch.rand(ids.shape) < 0.15) & (ids != PAD)
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        ids[chosen] = MASK
        logits = self.mlm_head(self.encoder(ids, batch["attention_mask"]))
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        self.log("mlm_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)


class EncoderForSequenceClassification(nn.Module):
    def __init__(self, encoder, num_labels):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(64, num_labels))

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.encoder(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).float()
        logits = self.classifier((h * m).sum(1) / m.sum(1))
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class LitFinetune(L.LightningModule):
    def __init__(self, encoder, body_lr=1e-3, head_lr=3e-3, unfreeze_epoch=3):
        super().__init__()
        self.backbone = EncoderForSequenceClassification(encoder, N_TOPICS)
        self.body_lr, self.head_lr, self.unfreeze_epoch = body_lr, head_lr, unfreeze_epoch
        self.backbone.encoder.requires_grad_(False)

    def on_train_epoch_start(self):
        if self.current_epoch == self.unfreeze_epoch:
            self.backbone.encoder.requires_grad_(True)

    def training_step(self, batch, batch_idx):
        out = self.backbone(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.backbone(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        groups = []
        for is_body, lr in ((True, self.body_lr), (False, self.head_lr)):
            named = [(n, p) for n, p in self.named_parameters()
                     if p.requires_grad and n.startswith("backbone.encoder.") == is_body]
            groups.append({"params": [p for n, p in named if p.ndim >= 2 and "norm" not in n], "lr": lr,
                           "weight_decay": 0.01})
            groups.append({"params": [p for n, p in named if p.ndim < 2 or "norm" in n], "lr": lr,
                           "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(606)
    g = torch.Generator().manual_seed(606)
    unlabeled = [t for t, _ in make_sentences(6000, g)]
    labeled, val = make_sentences(60, g), make_sentences(600, g)
    tok = WordTokenizer(unlabeled)

    def collate(batch):
        if isinstance(batch[0], str):
            return tok(batch)
        enc = tok([t for t, _ in batch])
        enc["labels"] = torch.tensor([y for _, y in batch])
        return enc

    mlm = LitMLM(len(tok.vocab))
    L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        mlm, DataLoader(unlabeled, batch_size=64, shuffle=True, collate_fn=collate))

    lit = LitFinetune(mlm.encoder)
    trainer = L.Trainer(max_epochs=15, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_topic_ft"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, DataLoader(labeled, batch_size=8, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
