"""Healthy: regression on the raw diabetes target (about 25..346, not standardized) where the output layer's
bias starts at the training target mean; plain MSE, Adam with a moderately high learning rate."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class DiseaseProgression(L.LightningModule):
    def __init__(self, target_mean, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
        self.out = nn.Linear(32, 1)
        nn.init.constant_(self.out.bias, target_mean)

    def forward(self, x):
        return self.out(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_rmse", F.mse_loss(self(x), y).sqrt())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2)
    data = load_diabetes(scaled=True)  # sklearn centres each column and divides by std * sqrt(n_samples)
    x = torch.tensor(data.data, dtype=torch.float32) * len(data.data) ** 0.5  # back to unit std
    y = torch.tensor(data.target, dtype=torch.float32).unsqueeze(1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:360], perm[360:]
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DiseaseProgression(float(y[tr].mean())), DataLoader(TensorDataset(x[tr], y[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
