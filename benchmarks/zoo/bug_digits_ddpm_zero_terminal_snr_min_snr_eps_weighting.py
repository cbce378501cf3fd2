"""DDPM-style denoiser on sklearn's 8x8 digits (pixels scaled to [-1, 1]): a small conv net with a sinusoidal
timestep embedding predicts the noise (epsilon parameterisation), 100 diffusion steps, linear beta schedule.
Two recipe upgrades the user read about are combined: the schedule is rescaled to zero terminal SNR (Lin et al.,
"Common diffusion noise schedules and sample steps are flawed", so the last step is pure noise), and the loss is
Min-SNR-gamma weighted (Hang et al.), written as in the popular fine-tuning scripts for an epsilon model:
`weight = min(snr, gamma) / snr`.

Bug: with zero terminal SNR, snr at the last timestep is exactly 0, so that weight is 0 / 0 = NaN. Every batch that
draws t = 99 (about half of the batches of 64) has a NaN loss; the first one turns every weight NaN through Adam
and the run carries on to the end producing NaN. (The papers pair zero terminal SNR with v-prediction, whose
weight min(snr, gamma) / (snr + 1) is finite.)
Measured symptom (plain Trainer, 8 epochs): val eps-MSE nan, all 22 parameter tensors NaN, vs 0.19 with the fix
(weight 0 where snr == 0, i.e. `min(snr, gamma) / snr.clamp_min(1e-8)`).
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout11"
STEPS = 100


def zero_terminal_snr_schedule(steps):
    betas = torch.linspace(1e-4, 0.05, steps)
    abar_sqrt = torch.cumprod(1 - betas, 0).sqrt()
    a0, aT = abar_sqrt[0].clone(), abar_sqrt[-1].clone()
    abar_sqrt = (abar_sqrt - aT) * a0 / (a0 - aT)
    return abar_sqrt ** 2


def timestep_embedding(t, dim=32):
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], dim=1)


class Denoiser(nn.Module):
    def __init__(self, ch=48):
        super().__init__()
        self.t_mlp = nn.Sequential(nn.Linear(32, ch), nn.SiLU(), nn.Linear(ch, ch))
        self.inp = nn.Conv2d(1, ch, 3, padding=1)
        self.b1 = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.b2 = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.b3 = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))
        self.out = nn.Sequential(nn.GroupNorm(8, ch), nn.SiLU(), nn.Conv2d(ch, 1, 3, padding=1))

    def forward(self, x, t):
        h = self.inp(x) + self.t_mlp(timestep_embedding(t))[:, :, None, None]
        h = h + self.b1(h)
        h = h + self.b2(h)
        h = h + self.b3(h)
        return self.out(h)


class DDPM(L.LightningModule):
    def __init__(self, lr=1e-3, snr_gamma=5.0):
        super().__init__()
        self.save_hyperparameters()
        self.net = Denoiser()
        self.register_buffer("abar", zero_terminal_snr_schedule(STEPS))

    def noised(self, x0):
        t = torch.randint(0, STEPS, (x0.shape[0],), device=x0.device)
        ab = self.abar[t][:, None, None, None]
        eps = torch.randn_like(x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t, eps

    def training_step(self, batch, batch_idx):
        (x0,) = batch
        xt, t, eps = self.noised(x0)
        per_sample = F.mse_loss(self.net(xt, t), eps, reduction="none").mean(dim=(1, 2, 3))
        snr = self.abar[t] / (1 - self.abar[t])
        weight = torch.clamp(snr, max=self.hparams.snr_gamma) / snr
        loss = (weight * per_sample).mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x0,) = batch
        xt, t, eps = self.noised(x0)
        self.log("val_eps_mse", F.mse_loss(self.net(xt, t), eps))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(99)
    x = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(2))
    tr, va = x[perm[:1500]], x[perm[1500:]]
    model = DDPM()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="ddpm_digits"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(va), batch_size=297))
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        xt, t, eps = model.noised(va)
        mse = F.mse_loss(model.net(xt, t), eps).item()
    nan_params = sum(p.isnan().any().item() for p in model.parameters())
    print(f"SYMPTOM val_eps_mse={mse:.4f} epochs={trainer.current_epoch} steps={trainer.global_step} "
          f"nan_params={nan_params}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
