"""Bug (causal leakage): a tiny autoregressive generative model of handwritten digits that treats each 8x8 digit
as a sequence of 8 pixel rows and predicts row t+1 from rows 0..t (teacher forcing, Bernoulli likelihood on the
pixel intensities scaled to [0, 1]). The "causal" temporal convolution stack uses `nn.Conv1d(..., padding=1)` with
kernel 3, i.e. symmetric padding, instead of left-padding by (kernel - 1). So the output at position t already sees
input row t+1, which is exactly the row it is asked to predict. Training runs fine and the loss drops fast, even
on validation, because the leak exists in both splits; but the model is useless for sampling row by row.

Measured (seed 11, 12 epochs): this version val_bce=0.244; fixed version (`F.pad(x, (2, 0))` then an unpadded
conv) val_bce=0.355. The "better" number is the leak."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout27"


class RowAR(L.LightningModule):
    def __init__(self, width=8, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(width, hidden, kernel_size=3, padding=1)
        self.mid = nn.Conv1d(hidden, hidden, kernel_size=3, padding=1)
        self.out = nn.Conv1d(hidden, width, kernel_size=1)

    def forward(self, rows):
        # rows: (B, T, W) -> logits for the next row at every position, (B, T, W)
        h = rows.transpose(1, 2)
        h = F.gelu(self.inp(h))
        h = F.gelu(self.mid(h)) + h
        return self.out(h).transpose(1, 2)

    def _step(self, batch):
        (img,) = batch
        rows = img.view(-1, 8, 8)
        logits = self(rows[:, :-1])
        return F.binary_cross_entropy_with_logits(logits, rows[:, 1:])

    def training_step(self, batch, batch_idx):
        loss = self._step(batch)
        self.log("train_bce", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_bce", self._step(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(11)
    X = load_digits().data / 16.0
    X_tr, X_va = train_test_split(X, test_size=0.2, random_state=0)
    train = TensorDataset(torch.tensor(X_tr, dtype=torch.float32))
    val = TensorDataset(torch.tensor(X_va, dtype=torch.float32))
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RowAR(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    print(f"SYMPTOM val_bce={trainer.callback_metrics['val_bce'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
