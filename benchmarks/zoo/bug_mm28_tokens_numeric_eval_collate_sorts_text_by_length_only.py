"""Bug: a text + numeric two-input classifier on synthetic "support ticket" records (variable-length token sequence
+ 4 numeric features; the 3-way label is a tertile of 2 * (fraction of "urgent" tokens - fraction of "calm" tokens)
+ 0.5 * (x0 - x1)). Training uses a padding collate that returns an HF-style dict. For evaluation someone added a
faster collate that sorts each batch by sequence length (longest first, "to trim padding work, order does not matter
for metrics") and permutes `input_ids` and `attention_mask`, but not `numeric` and `labels`. In every val batch the
text of one ticket is paired with the numbers and label of another. Training is untouched and the training loss
falls normally; validation silently scores mismatched records and is worse than predicting the class prior. Measured
(8 epochs): val loss 1.865 (uniform ln 3 = 1.099), val acc 0.560 with the bug vs val loss 0.189, val acc 0.930 with
the training collate used for validation too."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout28"

VOCAB = 24
URGENT = torch.tensor([2, 3, 4, 5, 6, 7])
CALM = torch.tensor([8, 9, 10, 11, 12, 13])


def make_records(n, gen):
    lengths = torch.randint(4, 17, (n,), generator=gen)
    seqs = [torch.randint(1, VOCAB, (int(k),), generator=gen) for k in lengths]
    numeric = torch.randn(n, 4, generator=gen) * torch.tensor([3.0, 3.0, 1.0, 10.0]) + 5.0
    text_score = torch.stack([torch.isin(s, URGENT).float().mean() - torch.isin(s, CALM).float().mean()
                              for s in seqs])
    num_score = (numeric[:, 0] - numeric[:, 1]) / 3.0
    return seqs, numeric, 2 * text_score + 0.5 * num_score


def to_labels(score, cuts):
    return torch.bucketize(score, cuts)


def collate(records):
    seqs, numeric, labels = zip(*records)
    width = max(len(s) for s in seqs)
    input_ids = torch.zeros(len(seqs), width, dtype=torch.long)
    attention_mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, :len(s)] = s
        attention_mask[i, :len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "numeric": torch.stack(numeric), "labels": torch.stack(labels)}


def eval_collate(records):
    batch = collate(records)
    order = batch["attention_mask"].sum(1).argsort(descending=True)
    batch["input_ids"] = batch["input_ids"][order]
    batch["attention_mask"] = batch["attention_mask"][order]
    return batch


@dataclass
class FusionOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class GatedFusionClassifier(L.LightningModule):
    def __init__(self, num_mean, num_std, dim=32, n_classes=3, lr=3e-3, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters(ignore=["num_mean", "num_std"])
        self.register_buffer("num_mean", num_mean)
        self.register_buffer("num_std", num_std)
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=0)
        self.text_proj = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.num_proj = nn.Sequential(nn.Linear(4, dim), nn.ReLU(), nn.Linear(dim, dim), nn.Tanh())
        self.gate = nn.Linear(2 * dim, dim)
        self.classifier = nn.Linear(dim, n_classes)

    def forward(self, input_ids, attention_mask, numeric, labels=None):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        h_text = self.text_proj(pooled)
        h_num = self.num_proj((numeric - self.num_mean) / self.num_std)
        z = torch.sigmoid(self.gate(torch.cat([h_text, h_num], dim=-1)))
        logits = self.classifier(z * h_text + (1 - z) * h_num)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return FusionOutput(loss=loss, logits=logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss, on_epoch=True)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup_steps

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(286)
    gen = torch.Generator().manual_seed(286)
    seqs, numeric, score = make_records(2400, gen)
    tr, va = slice(0, 2000), slice(2000, 2400)
    cuts = torch.quantile(score[tr], torch.tensor([1 / 3, 2 / 3]))
    labels = to_labels(score, cuts)
    records = list(zip(seqs, numeric, labels))
    train_dl = DataLoader(records[tr], batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(records[va], batch_size=128, collate_fn=eval_collate)
    model = GatedFusionClassifier(numeric[tr].mean(0), numeric[tr].std(0))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
