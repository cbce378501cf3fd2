"""Bug: a DeepSets regressor on variable-size point sets (4 to 24 points in the plane, padded to 24 with a mask).
The target is the fraction of a set's points that lie in the first or third quadrant, so the right pooling is a
masked mean of the per-point embeddings phi(x), followed by rho.

The masked mean is written `(h * mask[..., None]).sum(1) / mask.sum()`: `mask.sum()` without `dim=1, keepdim=True`
counts the valid points of the whole batch, so each set's pooled vector is its sum divided by a number that depends
on which other sets share the batch. Nothing errors (a scalar broadcasts), the model just cannot recover its own set
size and every prediction moves with the batch composition.
Symptom: val MSE 0.0114 / val R^2 0.56 vs MSE 0.0018 / R^2 0.93 with `mask.sum(1, keepdim=True)`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout16"
MAX_N = 24


def make_sets(n, seed):
    g = torch.Generator().manual_seed(seed)
    pts = torch.randn(n, MAX_N, 2, generator=g) + 0.5 * torch.randn(n, 1, 2, generator=g)
    sizes = torch.randint(4, MAX_N + 1, (n,), generator=g)
    mask = (torch.arange(MAX_N)[None] < sizes[:, None]).float()
    pts = pts * mask[..., None]
    same_sign = ((pts[..., 0] * pts[..., 1]) > 0).float() * mask
    return pts, mask, same_sign.sum(1) / mask.sum(1)


class DeepSets(L.LightningModule):
    def __init__(self, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.phi = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden))
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pts, mask):
        h = self.phi(pts)
        pooled = (h * mask[..., None]).sum(1) / mask.sum()
        return self.rho(pooled).squeeze(-1)

    def training_step(self, batch, batch_idx):
        pts, mask, y = batch
        loss = F.mse_loss(self(pts, mask), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pts, mask, y = batch
        mse = F.mse_loss(self(pts, mask), y)
        self.log("val_mse", mse)
        self.log("val_r2", 1 - mse / y.var())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5)
    tr = TensorDataset(*make_sets(6000, seed=1))
    va = TensorDataset(*make_sets(1000, seed=2))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DeepSets(), DataLoader(tr, batch_size=64, shuffle=True), DataLoader(va, batch_size=250))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_mse']):.4f} val_r2={float(m['val_r2']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
