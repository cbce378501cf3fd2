"""Bug: a convolutional encoder with an MLP decoder on sklearn's 8x8 digits (images `(B, 1, 8, 8)`); the decoder's
`(B, 64)` output is reshaped with `recon.view(-1, 8, 8)`, dropping the channel axis, so `F.mse_loss(recon, images)`
broadcasts `(B, 8, 8)` against `(B, 1, 8, 8)` to `(B, B, 8, 8)`: every reconstruction is compared with every image of
the batch and the model learns the batch's mean image. Adam with CosineAnnealingLR. Val reconstruction MSE 0.072 (the
mean image's) vs 0.023 with `view(-1, 1, 8, 8)`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout2"


class DigitsAutoencoder(L.LightningModule):
    def __init__(self, bottleneck=12, lr=2e-3, epochs=10):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())

    def forward(self, images):
        return self.decoder(self.encoder(images)).view(-1, 8, 8)  # BUG: should be view(-1, 1, 8, 8)

    def training_step(self, batch, batch_idx):
        (images,) = batch
        loss = F.mse_loss(self(images), images)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (images,) = batch
        recon = self(images).reshape(images.shape)
        self.log("val_mse", F.mse_loss(recon, images))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(12)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    train, val = random_split(TensorDataset(x), [1500, 297], generator=torch.Generator().manual_seed(12))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsAutoencoder(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=128))
    print(f"val_mse={trainer.callback_metrics['val_mse'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
