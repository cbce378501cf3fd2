"""Bug: a tiny ViT (2x2 patches of the 8x8 scikit-learn digits, CLS token) trained as an
HF-style regressor: `num_labels=1`, labels are the digit values as floats (the downstream "meter reading" service
wants a number, and 3-vs-8 mistakes should cost more than 3-vs-4), output object with `.loss` and `.logits`. The
author's regression branch computes `F.mse_loss(logits, labels)` with logits of shape (B, 1) and labels of shape
(B,): PyTorch broadcasts to a (B, B) matrix (only a UserWarning, hidden in the logs), so every image is regressed
towards every label of the batch and the optimum is the batch mean. Symptom: val MAE 2.49 and rounded accuracy 0.10
vs MAE 1.32 / accuracy 0.28 with `logits.squeeze(-1)` (same 12 epochs)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout17"


@dataclass
class SequenceRegressorOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyViTForImageRegression(nn.Module):
    def __init__(self, d=64, depth=2, heads=4, num_labels=1):
        super().__init__()
        self.num_labels = num_labels
        self.patch_embed = nn.Linear(4, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, num_labels)

    def forward(self, pixel_values, labels=None):
        b = pixel_values.shape[0]
        patches = pixel_values.view(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(patches)], 1) + self.pos_embed
        logits = self.head(self.norm(self.encoder(x))[:, 0])
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits, labels)
            else:
                loss = F.cross_entropy(logits, labels.long())
        return SequenceRegressorOutput(loss=loss, logits=logits)


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinyViTForImageRegression()

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.model(pixel_values=x, labels=y)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self.model(pixel_values=x).logits.squeeze(-1)
        self.log("val_mae", (pred - y).abs().mean())
        self.log("val_acc", (pred.round().clamp(0, 9) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(808)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).view(-1, 8, 8) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target, dtype=torch.float32)
    idx_tr, idx_va = train_test_split(range(len(y)), test_size=0.2, random_state=1, stratify=d.target)
    train_dl = DataLoader(TensorDataset(x[idx_tr], y[idx_tr]), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[idx_va], y[idx_va]), batch_size=256)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="vit_regression"), enable_checkpointing=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mae={float(m['val_mae']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
