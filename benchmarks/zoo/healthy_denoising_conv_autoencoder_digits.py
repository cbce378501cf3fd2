"""Healthy: a denoising convolutional autoencoder on 8x8 digits: each training batch is corrupted on the fly (Gaussian
noise 0.5 and 20% pixel drop-out) and the loss is the MSE against the clean batch. Conv encoder (stride 2) /
transposed-conv decoder with BatchNorm, Adam + StepLR(4, 0.5); validation on fixed noisy copies of held-out images.
Own metric: val denoise MSE 0.18 (the noisy inputs themselves are at about 0.45)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"


def corrupt(x, generator=None):
    noise = torch.randn(x.shape, generator=generator, device=x.device)
    keep = (torch.rand(x.shape, generator=generator, device=x.device) > 0.2).float()
    return x * keep + 0.5 * noise


class ConvAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                     nn.Conv2d(16, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                     nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, x):
        return self.decoder(self.encoder(x))


class LitDenoiser(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = ConvAE()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(corrupt(x)), x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        noisy, clean = batch
        self.log("val_denoise_mse", F.mse_loss(self(noisy), clean))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


def main():
    L.seed_everything(51)
    gen = torch.Generator().manual_seed(51)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    x = (x - x.mean()) / x.std()
    perm = torch.randperm(len(x), generator=gen)
    x_tr, x_va = x[perm[:1400]], x[perm[1400:]]
    val = TensorDataset(corrupt(x_va, generator=gen), x_va)  # fixed noisy copies for a stable metric
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitDenoiser(), DataLoader(TensorDataset(x_tr), batch_size=64, shuffle=True),
                DataLoader(val, batch_size=400))
    print(f"train_loss={trainer.callback_metrics['train_loss'].item():.3f} "
          f"val_denoise_mse={trainer.callback_metrics['val_denoise_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
