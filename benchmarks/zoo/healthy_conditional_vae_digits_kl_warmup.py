"""Healthy: a conditional VAE (Sohn et al. 2015) on sklearn's 8x8 digits, pixels scaled to [0, 1]: the encoder reads
the image and the one-hot digit label, the decoder reads the latent code and the same one-hot label, so the latent
code only has to carry the style (slant, thickness) and the label chooses the digit; sampling a label and a code
from the prior draws a digit of that class. Conv encoder (stride 2) to the mean and log-variance of a 6-d latent,
reparameterisation with `randn_like`, MLP + transposed-conv decoder with logits, loss = per-image Bernoulli NLL
(BCE with logits summed over pixels) + beta * KL, beta warmed up linearly from 0 to 1 over the first 300 steps
(KL annealing, stepped in `training_step`), Adam, ExponentialLR per epoch, bf16-mixed autocast on CPU. Own metric:
val negative ELBO 21.51 nats per image (reconstruction 20.44 + KL 1.06); the mean training image costs 27.01, the
mean image of the right class 22.23, and the pixels' own entropy (grey levels: the floor of a Bernoulli likelihood)
is 13.61."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"
LATENT = 6


class CVAE(L.LightningModule):
    def __init__(self, warmup_steps=300):
        super().__init__()
        self.enc_conv = nn.Sequential(nn.Conv2d(1 + 10, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten())
        self.to_mu = nn.Linear(64 * 2 * 2, LATENT)
        self.to_logvar = nn.Linear(64 * 2 * 2, LATENT)
        self.dec_fc = nn.Sequential(nn.Linear(LATENT + 10, 64 * 2 * 2), nn.LeakyReLU(0.2))
        self.dec_conv = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                      nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))
        self.warmup_steps = warmup_steps

    def encode(self, x, onehot):
        cond = onehot[:, :, None, None].expand(-1, -1, 8, 8)
        h = self.enc_conv(torch.cat([x, cond], dim=1))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z, onehot):
        return self.dec_conv(self.dec_fc(torch.cat([z, onehot], dim=1)).view(-1, 64, 2, 2))

    def forward(self, x, y):
        onehot = F.one_hot(y, 10).to(x.dtype)
        mu, logvar = self.encode(x, onehot)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, onehot), mu, logvar

    def terms(self, x, y):
        logits, mu, logvar = self(x, y)
        recon = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").sum((1, 2, 3)).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).float().mean()
        return recon, kl

    def training_step(self, batch, batch_idx):
        x, y = batch
        recon, kl = self.terms(x, y)
        beta = min(1.0, self.global_step / self.warmup_steps)
        loss = recon + beta * kl
        self.log_dict({"train_loss": loss, "train_kl": kl, "beta": beta})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        recon, kl = self.terms(x, y)
        self.log_dict({"val_loss": recon + kl, "val_recon": recon, "val_kl": kl})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)]


def main():
    L.seed_everything(88)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=8, stratify=y)
    trainer = L.Trainer(max_epochs=18, precision="bf16-mixed", accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CVAE(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=360))
    mean_img = x_tr.mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4)
    baseline = F.binary_cross_entropy(mean_img.expand_as(x_va), x_va, reduction="none").sum((1, 2, 3)).mean()
    class_means = torch.stack([x_tr[y_tr == c].mean(0) for c in range(10)]).clamp(1e-4, 1 - 1e-4)
    class_baseline = F.binary_cross_entropy(class_means[y_va], x_va, reduction="none").sum((1, 2, 3)).mean()
    floor = F.binary_cross_entropy(x_va.clamp(1e-4, 1 - 1e-4), x_va, reduction="none").sum((1, 2, 3)).mean()
    m = trainer.callback_metrics
    print(f"val_neg_elbo={m['val_loss'].item():.2f} recon={m['val_recon'].item():.2f} kl={m['val_kl'].item():.2f} "
          f"mean_image_baseline={baseline.item():.2f} class_mean_baseline={class_baseline.item():.2f} "
          f"entropy_floor={floor.item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
