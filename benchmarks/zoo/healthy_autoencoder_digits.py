"""Healthy: a fully connected autoencoder on digits (64 pixels in [0, 1]) with a sigmoid output and MSE
reconstruction loss; the batch is the image alone (no label)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None


class AutoEncoder(L.LightningModule):
    def __init__(self, code=12, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, code))
        self.decoder = nn.Sequential(nn.Linear(code, 48), nn.ReLU(), nn.Linear(48, 64), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        recon = self(batch)
        loss = F.mse_loss(recon, batch)
        self.log("recon_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_recon_loss", F.mse_loss(self(batch), batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5)
    pixels = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AutoEncoder(), DataLoader(pixels[:1500], batch_size=64, shuffle=True),
                DataLoader(pixels[1500:], batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
