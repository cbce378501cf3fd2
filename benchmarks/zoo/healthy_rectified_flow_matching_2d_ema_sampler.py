"""Healthy: conditional flow matching (rectified flow) on a 2-D pinwheel distribution. A time-conditioned MLP learns
the velocity v(x_t, t) with x_t = (1 - t) x0 + t x1, x0 ~ N(0, I), x1 ~ data, target x1 - x0; t is drawn uniformly
per sample, so the per-batch loss is noisy by construction and never approaches zero (the conditional target is
stochastic given x_t). An EMA copy of the weights (decay 0.995, updated in `on_train_batch_end`) is used for
sampling with 50 Euler steps. AdamW, linear warm-up then cosine per step, batches of 128. Final sample quality:
79 % of samples within 0.1 of a training point, median distance 0.027 (held-out real points: 0.010, standard-normal
draws: 0.046)."""

import copy
import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"


def pinwheel(n, g, arms=5):
    arm = torch.randint(0, arms, (n,), generator=g)
    r = 0.3 + torch.rand(n, generator=g)
    ang = 2 * math.pi * arm / arms + 1.2 * r + 0.15 * torch.randn(n, generator=g)
    return torch.stack([r * ang.cos(), r * ang.sin()], 1) * 1.5


class VelocityNet(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + 16, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))
        self.register_buffer("freqs", torch.arange(1, 9).float() * math.pi)

    def forward(self, x, t):
        emb = torch.cat([torch.sin(t[:, None] * self.freqs), torch.cos(t[:, None] * self.freqs)], 1)
        return self.net(torch.cat([x, emb], 1))


class FlowMatching(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=100, total=3000, ema_decay=0.995):
        super().__init__()
        self.save_hyperparameters()
        self.velocity = VelocityNet()
        self.ema = copy.deepcopy(self.velocity).requires_grad_(False)

    def loss(self, x1):
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], device=x1.device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        return F.mse_loss(self.velocity(xt, t), x1 - x0)

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch[0])
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        d = self.hparams.ema_decay
        with torch.no_grad():
            for pe, p in zip(self.ema.parameters(), self.velocity.parameters()):
                pe.lerp_(p, 1 - d)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch[0]), prog_bar=True)

    @torch.no_grad()
    def sample(self, n, steps=50):
        x = torch.randn(n, 2)
        for k in range(steps):
            t = torch.full((n,), k / steps)
            x = x + self.ema(x, t) / steps
        return x

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        w, total = self.hparams.warmup, self.hparams.total

        def lr_lambda(step):
            if step < w:
                return (step + 1) / w
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / (total - w))))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(29)
    g = torch.Generator().manual_seed(29)
    x_tr, x_va = pinwheel(10000, g), pinwheel(2000, g)
    train_dl = DataLoader(TensorDataset(x_tr), batch_size=128, shuffle=True)
    epochs = 40
    model = FlowMatching(total=epochs * len(train_dl))
    trainer = L.Trainer(max_epochs=epochs, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu",
                        devices=1, logger=TensorBoardLogger("lightning_logs", name="flow_matching_pinwheel"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dl, DataLoader(TensorDataset(x_va), batch_size=2000))
    samples = model.sample(2000)
    nn_dist = torch.cdist(samples, x_tr).min(1).values
    dist = nn_dist.median().item()
    base = torch.cdist(torch.randn(2000, 2, generator=g), x_tr).min(1).values.median().item()
    real = torch.cdist(x_va, x_tr).min(1).values.median().item()
    print(f"SYMPTOM samples_within_0.1_of_data={(nn_dist < 0.1).float().mean().item():.3f}")
    print(f"SYMPTOM median sample_dist_to_data={dist:.3f} real_dist_to_data={real:.3f} gaussian_dist_to_data={base:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
