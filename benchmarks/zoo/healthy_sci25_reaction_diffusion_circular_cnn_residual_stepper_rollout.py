"""Healthy: a learned time-stepper for the 1-D Fisher-KPP reaction-diffusion equation u_t = D u_xx + r u (1 - u)
on a periodic domain of 64 cells. Reference trajectories (seeded random smooth initial conditions, random D and
r) are integrated with explicit finite differences at a small dt; the surrogate advances the state by 10 solver
steps at once. A 1-D CNN with `padding_mode="circular"` (the boundary is periodic, so circular padding is the
right stencil, not zero padding) takes (u, D, r broadcast as channels) and predicts the *increment*
u(t + 10 dt) - u(t), scaled by a constant computed from the training increments; MSE; Adam with a step schedule.
After training, a 20-step autoregressive rollout on validation trajectories is compared with the solver.

Why it is correct: trajectories, not time steps, are split between train and val (pairs from one trajectory
never straddle the split); the increment target and the parameter channels are normalized with training
statistics; the convolution is spatially symmetric and not causal on purpose (this is a PDE in space, not a
sequence forecast); GroupNorm rather than BatchNorm so one sample's prediction never depends on the batch.
Measured: val one-step MSE 0.0075 (normalized increments) and rollout RMSE 0.023 after 20 steps, vs 0.417 for
the persistence baseline.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"
CELLS, DX, DT, SUB, FRAMES = 64, 1.0, 0.1, 10, 31


def simulate(n, g):
    x = torch.arange(CELLS) * 2 * math.pi / CELLS
    u = torch.zeros(n, CELLS)
    for k in range(1, 4):
        a = torch.randn(n, 1, generator=g) / k
        ph = 2 * math.pi * torch.rand(n, 1, generator=g)
        u = u + a * torch.sin(k * x + ph)
    u = torch.sigmoid(2 * u)
    diff = 0.2 + 0.6 * torch.rand(n, 1, generator=g)
    rate = 0.05 + 0.15 * torch.rand(n, 1, generator=g)
    frames = [u]
    for _ in range(FRAMES - 1):
        for _ in range(SUB):
            lap = (u.roll(1, 1) - 2 * u + u.roll(-1, 1)) / DX ** 2
            u = u + DT * (diff * lap + rate * u * (1 - u))
        frames.append(u)
    return torch.stack(frames, 1), torch.cat([diff, rate], 1)


class Stepper(L.LightningModule):
    def __init__(self, inc_scale, p_mu, p_sd, ch=32, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        conv = dict(kernel_size=5, padding=2, padding_mode="circular")
        self.net = nn.Sequential(nn.Conv1d(3, ch, **conv), nn.GroupNorm(4, ch), nn.GELU(),
                                 nn.Conv1d(ch, ch, **conv), nn.GroupNorm(4, ch), nn.GELU(),
                                 nn.Conv1d(ch, ch, **conv), nn.GELU(), nn.Conv1d(ch, 1, 1))
        self.register_buffer("p_mu", p_mu)
        self.register_buffer("p_sd", p_sd)

    def forward(self, u, params):
        p = ((params - self.p_mu) / self.p_sd)[:, :, None].expand(-1, -1, u.shape[1])
        return self.net(torch.cat([u.unsqueeze(1), p], 1)).squeeze(1)

    def step(self, u, params):
        return u + self(u, params) * self.hparams.inc_scale

    def training_step(self, batch, batch_idx):
        u, params, inc = batch
        loss = F.mse_loss(self(u, params), inc)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        u, params, inc = batch
        self.log("val_loss", F.mse_loss(self(u, params), inc))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.3)]


def pairs(traj, params, scale):
    u0, u1 = traj[:, :-1].reshape(-1, CELLS), traj[:, 1:].reshape(-1, CELLS)
    p = params.repeat_interleave(FRAMES - 1, 0)
    return TensorDataset(u0, p, (u1 - u0) / scale)


def main():
    L.seed_everything(64)
    g = torch.Generator().manual_seed(9)
    traj, params = simulate(120, g)
    tr_traj, va_traj, tr_p, va_p = traj[:96], traj[96:], params[:96], params[96:]
    inc_scale = float((tr_traj[:, 1:] - tr_traj[:, :-1]).std())
    model = Stepper(inc_scale, tr_p.mean(0), tr_p.std(0))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(pairs(tr_traj, tr_p, inc_scale), batch_size=64, shuffle=True),
                DataLoader(pairs(va_traj, va_p, inc_scale), batch_size=256))
    model.eval()
    with torch.no_grad():
        u = va_traj[:, 0]
        for _ in range(20):
            u = model.step(u, va_p)
    rollout = float((u - va_traj[:, 20]).pow(2).mean().sqrt())
    persistence = float((va_traj[:, 0] - va_traj[:, 20]).pow(2).mean().sqrt())
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_loss']):.4f} rollout20_rmse={rollout:.4f} "
          f"persistence_rmse={persistence:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
