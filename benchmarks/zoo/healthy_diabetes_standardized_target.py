"""Healthy: MLP regression on sklearn's diabetes with standardized features and a standardized target
(fit on the training split), MSE loss, Adam."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class Regressor(L.LightningModule):
    def __init__(self, n_features, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        self.loss_fn = nn.MSELoss()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", self.loss_fn(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(0)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=0)
    xs, ys = StandardScaler().fit(Xtr), StandardScaler().fit(ytr.reshape(-1, 1))
    to_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_t(xs.transform(Xtr)), to_t(ys.transform(ytr.reshape(-1, 1)).ravel()))
    val = TensorDataset(to_t(xs.transform(Xva)), to_t(ys.transform(yva.reshape(-1, 1)).ravel()))
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(Xtr.shape[1]), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
