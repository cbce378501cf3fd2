"""Bug: a surrogate for a damped pendulum. 4000 trajectories are simulated (RK4 plus a random torque, dt = 0.05,
101 steps) from random initial angle, angular velocity, length and damping; the model sees coarse snapshots of
the *observed* part of the trajectory (steps 0..40) plus the two physical parameters and must forecast the
mechanical energy at the final step 100 (a quantity the lab only measures at the end of a run).
MLP, MSE on the standardized target, AdamW with cosine.

The trajectories are stochastic (an unmeasured random torque), so the final energy is only partly predictable.
The snapshot features are built with `traj[:, ::STRIDE]` (the comment says "coarse snapshots of the observed
window") instead of `traj[:, :OBSERVED:STRIDE]`. With 101 steps and a stride of 10 the slice ends on step 100, so the
last two features are exactly the angle and velocity whose energy is the target. Nothing crashes and the model
looks excellent. Symptom: val MSE (standardized) 0.013 with the leak vs 0.229 when the snapshots stop at step 40.
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout25"
STEPS, DT, OBSERVED, STRIDE = 101, 0.05, 41, 10


def simulate(n, g):
    theta = (torch.rand(n, generator=g) * 2 - 1) * 2.0
    omega = (torch.rand(n, generator=g) * 2 - 1) * 1.5
    length = 0.5 + torch.rand(n, generator=g)
    damping = 0.05 + 0.6 * torch.rand(n, generator=g)

    def deriv(s):
        return torch.stack([s[:, 1], -9.81 / length * torch.sin(s[:, 0]) - damping * s[:, 1]], 1)

    state = torch.stack([theta, omega], 1)
    traj = [state]
    for _ in range(STEPS - 1):
        k1 = deriv(state)
        k2 = deriv(state + DT / 2 * k1)
        k3 = deriv(state + DT / 2 * k2)
        k4 = deriv(state + DT * k3)
        state = state + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        # unmeasured random torque (air currents, pivot friction): the future is not a function of the past
        state = state + torch.stack([torch.zeros(n), 0.6 * DT ** 0.5 * torch.randn(n, generator=g)], 1)
        traj.append(state)
    traj = torch.stack(traj, 1)
    final = traj[:, -1]
    energy = 0.5 * (length * final[:, 1]) ** 2 + 9.81 * length * (1 - torch.cos(final[:, 0]))
    return traj, torch.stack([length, damping], 1), energy


class EnergySurrogate(L.LightningModule):
    def __init__(self, n_in, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(25)
    g = torch.Generator().manual_seed(11)
    traj, params, energy = simulate(4000, g)
    # coarse snapshots of the observed window, flattened (angle, velocity) pairs
    snapshots = traj[:, ::STRIDE].flatten(1)
    x = torch.cat([snapshots, params], 1)
    x_tr, x_va, y_tr, y_va = x[:3200], x[3200:], energy[:3200], energy[3200:]
    mu, sd = x_tr.mean(0), x_tr.std(0)
    y_mu, y_sd = y_tr.mean(), y_tr.std()
    train = TensorDataset((x_tr - mu) / sd, (y_tr - y_mu) / y_sd)
    val = TensorDataset((x_va - mu) / sd, (y_va - y_mu) / y_sd)
    model = EnergySurrogate(x.shape[1])
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=400))
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_loss']):.4f} n_features={x.shape[1]}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
