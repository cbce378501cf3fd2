"""Bug: a hand-written L2 penalty subtracted instead of added (`ce - l2 * sum(w**2)`): the optimizer is rewarded
for large weights and, with Adam, the weight norms grow steadily without bound. Digits MLP."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"weight-growth"}


class RegularisedMLP(L.LightningModule):
    def __init__(self, l2=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        ce = F.cross_entropy(self(x), y)
        penalty = sum(p.pow(2).sum() for n, p in self.named_parameters() if "weight" in n)
        loss = ce - self.hparams.l2 * penalty  # BUG: should be +
        self.log_dict({"train_ce": ce, "train_loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_ce", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(42)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RegularisedMLP(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
