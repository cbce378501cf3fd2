"""Healthy: a toy DDPM on sklearn's 8x8 digits (pixels scaled to [-1, 1]). A residual MLP predicts the noise from
(x_t, sinusoidal embedding of t) with the epsilon objective over a cosine noise schedule (T = 100), AdamW with a
short linear warm-up, gradient clipping at 1.0 and an EMA copy of the weights (updated in on_train_batch_end,
used for validation and sampling). Validation reports the eps-MSE with fixed (seeded) noise. At the end 256
digits are sampled with the ancestral sampler and scored with a logistic-regression digit classifier fitted on
the real images: its mean max-probability on samples is 0.83 and the val eps-MSE 0.25."""

import copy
import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout20"
T = 100


def cosine_alpha_bar(steps, s=0.008):
    t = torch.linspace(0, steps, steps + 1) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    return betas, torch.cumprod(1 - betas, 0)


def time_embedding(t, dim=32):
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class ResBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, h):
        return h + self.net(h)


class EpsNet(nn.Module):
    def __init__(self, d=256):
        super().__init__()
        self.inp = nn.Linear(64 + 32, d)
        self.blocks = nn.Sequential(ResBlock(d), ResBlock(d), ResBlock(d))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 64))

    def forward(self, x, t):
        return self.out(self.blocks(self.inp(torch.cat([x, time_embedding(t)], 1))))


class DigitDDPM(L.LightningModule):
    def __init__(self, lr=1e-3, warmup=100, ema_decay=0.99):
        super().__init__()
        self.save_hyperparameters()
        self.model = EpsNet()
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        betas, ab = cosine_alpha_bar(T)
        self.register_buffer("betas", betas)
        self.register_buffer("alpha_bar", ab)

    def diffuse(self, x0, t, eps):
        ab = self.alpha_bar[t][:, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def training_step(self, batch, batch_idx):
        (x0,) = batch
        t = torch.randint(0, T, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        loss = F.mse_loss(self.model(self.diffuse(x0, t, eps), t), eps)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.model.parameters()):
                pe.lerp_(p, 1 - self.hparams.ema_decay)

    def validation_step(self, batch, batch_idx):
        (x0,) = batch
        g = torch.Generator().manual_seed(batch_idx)
        t = torch.randint(0, T, (x0.shape[0],), generator=g).to(x0.device)
        eps = torch.randn(x0.shape, generator=g).to(x0.device)
        self.log("val_loss", F.mse_loss(self.ema(self.diffuse(x0, t, eps), t), eps))

    @torch.no_grad()
    def sample(self, n):
        x = torch.randn(n, 64)
        for step in reversed(range(T)):
            t = torch.full((n,), step)
            beta, ab = self.betas[step], self.alpha_bar[step]
            mean = (x - beta / (1 - ab).sqrt() * self.ema(x, t)) / (1 - beta).sqrt()
            x = mean + (beta.sqrt() * torch.randn_like(x) if step > 0 else 0)
        return x.clamp(-1, 1)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.hparams.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1607)
    digits = load_digits()
    X = torch.tensor(digits.data / 8.0 - 1.0, dtype=torch.float32)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    train, val = X[perm[:1500]], X[perm[1500:]]
    model = DigitDDPM()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks(),
                        enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=150))
    scorer = LogisticRegression(max_iter=2000).fit(X.numpy(), digits.target)
    samples = model.sample(256)
    conf = scorer.predict_proba(samples.numpy()).max(1).mean()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} sample_confidence={conf:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
