"""Healthy: a convolutional autoencoder on sklearn's 8x8 digits, as the PyTorch/Keras tutorials write it for MNIST
but with a standardized encoder input: the encoder reads the pixels z-scored with the training split's per-pixel
mean/std (constant border pixels get std 1), the decoder (Linear -> ConvTranspose2d) outputs one logit per pixel and
the loss is `binary_cross_entropy_with_logits` against the pixels scaled to [0, 1] (`x / 16`), the Bernoulli
likelihood of grey levels. Conv-BN-ReLU encoder with a 16-d bottleneck, Adam 2e-3, cosine per epoch.
Own metric: val relative MSE (MSE of sigmoid(logits) vs the [0, 1] pixels, divided by their variance) 0.09."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout9"


class ConvAutoencoder(nn.Module):
    def __init__(self, latent=16):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(32 * 4 * 4, latent))
        self.decoder_fc = nn.Sequential(nn.Linear(latent, 32 * 4 * 4), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(self.decoder_fc(z).view(-1, 32, 4, 4))


class LitAE(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = ConvAutoencoder()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, target = batch
        loss = F.binary_cross_entropy_with_logits(self(x), target)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, target = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, target))
        self.log("val_rel_mse", F.mse_loss(torch.sigmoid(logits), target) / target.var())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(7)
    d = load_digits()
    pixels = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    i_tr, i_va = train_test_split(torch.arange(len(pixels)), test_size=0.2, random_state=0)
    mean, std = pixels[i_tr].mean(0), pixels[i_tr].std(0)
    std = torch.where(std < 1e-3, torch.ones_like(std), std)
    x = (pixels - mean) / std
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitAE(), DataLoader(TensorDataset(x[i_tr], pixels[i_tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[i_va], pixels[i_va]), batch_size=256))
    print(f"val_rel_mse={trainer.callback_metrics['val_rel_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
