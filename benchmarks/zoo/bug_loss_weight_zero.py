"""Bug: a loss-weight warm-up written with integer division, `self.current_epoch // self.warmup_epochs`, is 0
for every epoch of this 5-epoch run: the loss that reaches backward is exactly zero and nothing trains. Iris."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss", "dead-gradient"}


class IrisNet(L.LightningModule):
    def __init__(self, warmup_epochs=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        weight = min(1.0, self.current_epoch // self.hparams.warmup_epochs)  # BUG: meant "/"
        ce = F.cross_entropy(self(x), y)
        self.log("train_ce", ce)
        return weight * ce

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_ce", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main():
    L.seed_everything(42)
    X, y = load_iris(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.tensor(y)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    tr, va = perm[:120], perm[120:]
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=2, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IrisNet(), DataLoader(TensorDataset(X[tr], y[tr]), batch_size=8, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=30))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
