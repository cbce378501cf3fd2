"""Healthy: a multi-task model whose second head (a regression head from an earlier experiment, kept for
checkpoint compatibility) is frozen with requires_grad=False and not used in this run; only the classification
path trains. Iris, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class MultiTask(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 32), nn.ReLU())
        self.cls_head = nn.Linear(32, 3)
        self.reg_head = nn.Linear(32, 1)
        for p in self.reg_head.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.cls_head(self.trunk(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=1e-2)


def main():
    L.seed_everything(12)
    X, y = load_iris(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.tensor(y)
    perm = torch.randperm(150, generator=torch.Generator().manual_seed(1))
    tr, va = perm[:120], perm[120:]
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=4, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiTask(), DataLoader(TensorDataset(X[tr], y[tr]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=30))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
