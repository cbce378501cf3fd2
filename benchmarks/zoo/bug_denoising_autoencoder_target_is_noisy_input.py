"""Bug: a denoising convolutional autoencoder; the training step corrupts the batch (`noisy = x + 0.5 * randn` and
random pixel drop-out) and then computes the loss against `noisy` instead of the clean `x` (the variable was
reassigned: `x = corrupt(x)` before `loss = mse(model(x), x)`), so the target is the input itself and the model
learns the identity, noise included. Model: conv encoder (stride 2) / transposed-conv decoder with BatchNorm and a
4x4x8 bottleneck on 8x8 digits, Adam + StepLR. Own metric: val MSE between the reconstruction of a noisy val image
and the clean image. Fixed (loss against the clean image): val denoise MSE 0.18 (train loss 0.17). With the bug:
0.43, while the training loss, measured against the noisy input, is 0.05 (too good for a denoiser)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
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
        x = corrupt(x)
        loss = F.mse_loss(self(x), x)  # BUG: x now holds the corrupted batch
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
