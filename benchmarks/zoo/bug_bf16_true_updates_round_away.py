"""Bug: a HuggingFace-style language-identification model (embedding + Transformer encoder layer + mean pooling,
in-model loss, `.logits`) fine-tuned at AdamW lr 1e-4 under `precision="bf16-true"` instead of "bf16-mixed":
the weights themselves are bf16 (8 significant bits), so an update of ~1e-4 on a weight of magnitude 0.1-1 is
below half the spacing between representable values and rounds away; most of each step is lost, most visibly
in the embeddings (N(0, 1) init).
Measured: val acc 0.498 (val loss 1.05, ln 3 = 1.10) vs 0.828 (0.58) under bf16-mixed
(healthy_bf16_mixed_language_id_transformer)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"update-ratio", "loss-trend"}
SPLIT = "heldout3"
ALPHABET, LANGS, LENGTH = 40, 3, 16


def strings(n, seed):
    freqs = torch.softmax(0.6 * torch.randn(LANGS, ALPHABET, generator=torch.Generator().manual_seed(3)), -1)
    g = torch.Generator().manual_seed(seed)
    langs = torch.randint(0, LANGS, (n,), generator=g)
    chars = torch.multinomial(freqs[langs], LENGTH, replacement=True, generator=g)
    return [{"input_ids": c, "labels": lang} for c, lang in zip(chars, langs)]


@dataclass
class Output:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class LanguageIdModel(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(ALPHABET, dim)
        self.pos = nn.Parameter(torch.zeros(LENGTH, dim))
        self.layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.1, batch_first=True)
        self.classifier = nn.Linear(dim, LANGS)

    def forward(self, input_ids, labels=None):
        h = self.layer(self.embed(input_ids) + self.pos)
        logits = self.classifier(h.mean(1))
        return Output(logits=logits, loss=F.cross_entropy(logits, labels) if labels is not None else None)


class LitLanguageId(L.LightningModule):
    def __init__(self, lr=1e-4, total_steps=600):
        super().__init__()
        self.save_hyperparameters()
        self.model = LanguageIdModel()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        acc = (out.logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({"val_loss": out.loss.float(), "val_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(31)
    train = DataLoader(strings(2400, 0), batch_size=16, shuffle=True)
    val = DataLoader(strings(600, 1), batch_size=300)
    epochs = 4
    # BUG: "bf16-true" keeps the weights themselves in bf16 (meant: "bf16-mixed")
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, precision="bf16-true",
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLanguageId(total_steps=epochs * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
