"""Bug: ReduceLROnPlateau stepped on every batch (`"interval": "step"`) watching the batch's train_loss, with the
patience of 2 meant in epochs: a noisy batch loss "fails to improve" for 3 batches every few steps, so the rate is
halved again and again and is effectively 0 within the first epoch or two. Otherwise the same script as the healthy
twin: a convolutional autoencoder on sklearn's 8x8 digits (pixels scaled to [0, 1]): strided conv encoder to a 16-d
code, ConvTranspose decoder ending in a sigmoid, MSE reconstruction loss, Adam with ReduceLROnPlateau (factor 0.5,
patience 2). Own metric: val reconstruction MSE 0.008 (predicting the mean image gives 0.074). Measured with the
bug: val MSE 0.075 (no better than the mean image) vs 0.008 fixed."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout3"


class ConvAutoencoder(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 16))
        self.decoder = nn.Sequential(
            nn.Linear(16, 32 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (32, 4, 4)),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_loss", F.mse_loss(self(x), x))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        # BUG: per-batch stepping on the noisy batch loss with an epoch-sized patience
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "train_loss", "interval": "step"}}


def main():
    L.seed_everything(17)
    x = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(17))
    tr, va = x[perm[:1400]], x[perm[1400:]]
    model = ConvAutoencoder()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(va), batch_size=256))
    mean_image_mse = F.mse_loss(tr.mean(0, keepdim=True).expand_as(va), va).item()
    print(f"val_mse={trainer.callback_metrics['val_loss'].item():.4f} mean_image_mse={mean_image_mse:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
