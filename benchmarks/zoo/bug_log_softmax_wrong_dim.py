"""Bug: `F.log_softmax(logits, dim=0)` (normalising over the batch instead of the classes) before nll_loss:
each sample's log-probabilities depend on the other samples of the batch. Iris MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing", "loss-input"}


class IrisNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return F.log_softmax(self.net(x), dim=0)  # BUG: should be dim=1

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.nll_loss(self(x), y)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main():
    L.seed_everything(43)
    X, y = load_iris(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    X = (X - X.mean(0)) / X.std(0)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(0))
    tr, va = perm[:120], perm[120:]
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IrisNet(), DataLoader(TensorDataset(X[tr], y[tr]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=30))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
