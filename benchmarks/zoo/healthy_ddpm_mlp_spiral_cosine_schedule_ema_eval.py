"""Healthy: a diffusion model on a 2-D point cloud (a noisy two-arm spiral): an MLP denoiser with a sinusoidal
time embedding predicts the noise, 200 steps with the clipped cosine schedule (Nichol & Dhariwal), AdamW with
a short warm-up then constant lr, gradient clipping, and an exponential moving average of the weights
(`AveragedModel` with `get_ema_multi_avg_fn(0.995)`, updated after every optimizer step) that validation and
sampling use. Final val eps-MSE about 0.45 (1.0 for a model that predicts zero) and ancestral samples gather on the
spiral (mean distance to the nearest training point 0.09, vs 0.22 for Gaussian noise)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
STEPS = 200


def spiral(n, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, generator=g).sqrt() * 3 * math.pi
    arm = torch.randint(0, 2, (n,), generator=g).float() * math.pi
    pts = torch.stack([s * torch.cos(s + arm), s * torch.sin(s + arm)], 1) / 5.0
    return pts + 0.03 * torch.randn(n, 2, generator=g)


def cosine_abar(steps, s=0.008):
    t = torch.linspace(0, steps, steps + 1) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)


class EpsMLP(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.t_proj = nn.Linear(32, hidden)
        self.inp = nn.Linear(2, hidden)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                  nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, t):
        freqs = torch.exp(-math.log(1000.0) * torch.arange(16, device=x.device) / 16)
        ang = t.float()[:, None] * freqs
        return self.body(self.inp(x) + self.t_proj(torch.cat([ang.sin(), ang.cos()], 1)))


class SpiralDiffusion(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=100):
        super().__init__()
        self.save_hyperparameters()
        self.net = EpsMLP()
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(0.995))
        self.register_buffer("abar", cosine_abar(STEPS))

    def eps_loss(self, net, x0):
        t = torch.randint(0, STEPS, (x0.shape[0],), device=x0.device)
        ab = self.abar[t][:, None]
        eps = torch.randn_like(x0)
        return F.mse_loss(net(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t), eps)

    def training_step(self, batch, batch_idx):
        (x0,) = batch
        loss = self.eps_loss(self.net, x0)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        (x0,) = batch
        self.log("val_eps_mse", self.eps_loss(self.ema.module, x0))

    @torch.no_grad()
    def sample(self, n, gen):
        net = self.ema.module
        x = torch.randn(n, 2, generator=gen)
        abar_prev = torch.cat([torch.ones(1), self.abar[:-1]])
        for t in reversed(range(STEPS)):
            ab, ab_prev = self.abar[t], abar_prev[t]
            beta = 1 - ab / ab_prev
            eps = net(x, torch.full((n,), t))
            x = (x - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
            if t > 0:
                x = x + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * torch.randn(n, 2, generator=gen)
        return x

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.hparams.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm")


def main():
    L.seed_everything(8)
    tr, va = spiral(8000, seed=1), spiral(1000, seed=2)
    model = SpiralDiffusion()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="spiral_ddpm"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(va), batch_size=1000))
    model.eval()
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    with torch.no_grad():
        val = model.eps_loss(model.ema.module, va).item()
    samples = model.sample(500, g)
    noise = torch.randn(500, 2, generator=g)
    near = torch.cdist(samples, tr).amin(1).mean().item()
    near_noise = torch.cdist(noise, tr).amin(1).mean().item()
    near_real = torch.cdist(va[:500], tr).amin(1).mean().item()
    print(f"SYMPTOM val_eps_mse={val:.3f} sample_nn_dist={near:.3f} noise_nn_dist={near_noise:.3f} "
          f"heldout_real_nn_dist={near_real:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
