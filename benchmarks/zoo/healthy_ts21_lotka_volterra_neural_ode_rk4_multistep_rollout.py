"""Healthy: a neural-ODE surrogate of a predator-prey system. Trajectories of the Lotka-Volterra equations
(x' = x - x y, y' = x y - y, equilibrium at (1, 1), so populations stay around 0.2-3 without any rescaling) are
simulated from 240 random initial states with a fine RK4 solver and observed every 0.1 time units with 1 % noise.
The model is a small tanh MLP for the vector field f(z); a fixed-step RK4 integrator inside `forward` rolls an
observed state forward 8 steps and the loss is the MSE between the rollout and the next 8 observations (multi-step
"shooting" loss, which is what makes the learned field stable). Adam with a linear warm-up into cosine decay.

Why it is correct: the model only ever sees the state at the window start, targets are strictly later observations,
trajectories (not windows) are split between train and validation so no orbit is shared, the populations are
already O(1) so no normalisation statistics are needed, and the schedule is sized from
`trainer.estimated_stepping_batches`. Measured: val rollout RMSE 0.016 after 15 epochs (the 1 % observation noise
alone gives ~0.012), against 0.216 for the "no dynamics" baseline that predicts the start state for all 8 steps."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
DT, HORIZON = 0.1, 8


def lotka_volterra(z):
    x, y = z[..., 0], z[..., 1]
    return torch.stack([x - x * y, x * y - y], -1)


def rk4_step(f, z, dt):
    k1 = f(z)
    k2 = f(z + 0.5 * dt * k1)
    k3 = f(z + 0.5 * dt * k2)
    k4 = f(z + dt * k3)
    return z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def simulate(n, steps, g, substeps=10):
    z = 0.4 + 1.6 * torch.rand(n, 2, generator=g)
    out = [z]
    for _ in range(steps):
        for _ in range(substeps):
            z = rk4_step(lotka_volterra, z, DT / substeps)
        out.append(z)
    traj = torch.stack(out, 1)
    return traj * (1 + 0.01 * torch.randn(traj.shape, generator=g))


def windows(traj, stride=6):
    starts = range(0, traj.shape[1] - HORIZON, stride)
    z0 = torch.cat([traj[:, s] for s in starts])
    future = torch.cat([traj[:, s + 1:s + 1 + HORIZON] for s in starts])
    return z0, future


class NeuralODE(L.LightningModule):
    def __init__(self, hidden=64, lr=5e-3, warmup=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.field = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                   nn.Linear(hidden, 2))

    def forward(self, z0):
        z, states = z0, []
        for _ in range(HORIZON):
            z = rk4_step(self.field, z, DT)
            states.append(z)
        return torch.stack(states, 1)

    def training_step(self, batch, batch_idx):
        z0, future = batch
        loss = F.mse_loss(self(z0), future)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        z0, future = batch
        self.log("val_rmse", F.mse_loss(self(z0), future).sqrt())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warm = int(self.hparams.warmup * total)

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "step"}]


def main():
    L.seed_everything(2111)
    g = torch.Generator().manual_seed(12)
    traj = simulate(240, 60, g)
    z_tr, f_tr = windows(traj[:200])
    z_va, f_va = windows(traj[200:])
    model = NeuralODE()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(z_tr, f_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(z_va, f_va), batch_size=512))
    static = float((f_va - z_va[:, None]).pow(2).mean().sqrt())
    print(f"SYMPTOM val_rmse={float(trainer.callback_metrics['val_rmse']):.4f} static_baseline={static:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
