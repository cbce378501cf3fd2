"""Bug: a neural surrogate for a damped, driven pendulum. Trajectories are simulated in torch with RK4 from random
initial angle / velocity and random damping and drive amplitude; an MLP maps (theta0, omega0, damping, drive) to the
angle at 32 future times (a tiny solution operator), trained with MSE, AdamW and a OneCycle schedule stepped per
batch.

`OneCycleLR(total_steps=self.trainer.max_epochs * len(self.train_set))` counts samples, not optimizer steps (the user
meant `len(train_dataloader)`, or `trainer.estimated_stepping_batches`). The schedule is 64x too long: training
ends 1.6 % of the way into the cycle, still inside the warm-up, so the learning rate never leaves ~max_lr/25 and the
surrogate is badly under-trained - and since the run simply ends, there is no error.
Symptom: val MSE 0.0022 (lr never above 1.4e-4; target variance 0.43) vs val MSE 0.0001 with
total_steps=trainer.estimated_stepping_batches."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout16"
N_OUT, DT, SUBSTEPS = 32, 0.1, 4


def simulate(n, seed):
    g = torch.Generator().manual_seed(seed)
    th0 = (torch.rand(n, generator=g) * 2 - 1) * 2.5
    om0 = (torch.rand(n, generator=g) * 2 - 1) * 1.5
    damp = 0.05 + 0.5 * torch.rand(n, generator=g)
    drive = 1.2 * torch.rand(n, generator=g)

    def f(t, s):
        return torch.stack([s[:, 1], -torch.sin(s[:, 0]) - damp * s[:, 1] + drive * math.cos(1.3 * t)], 1)

    s, t, h, out = torch.stack([th0, om0], 1), 0.0, DT / SUBSTEPS, []
    for _ in range(N_OUT):
        for _ in range(SUBSTEPS):
            k1 = f(t, s)
            k2 = f(t + h / 2, s + h / 2 * k1)
            k3 = f(t + h / 2, s + h / 2 * k2)
            k4 = f(t + h, s + h * k3)
            s, t = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + h
        out.append(s[:, 0])
    params = torch.stack([th0 / 2.5, om0 / 1.5, (damp - 0.3) / 0.15, (drive - 0.6) / 0.35], 1)
    return params, torch.stack(out, 1) / 2.0


class PendulumSurrogate(L.LightningModule):
    def __init__(self, train_set, max_lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["train_set"])
        self.train_set = train_set
        self.net = nn.Sequential(nn.Linear(4, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
                                 nn.Linear(256, 256), nn.GELU(), nn.Linear(256, N_OUT))

    def forward(self, p):
        return self.net(p)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=64, shuffle=True)

    def training_step(self, batch, batch_idx):
        p, traj = batch
        loss = F.mse_loss(self(p), traj)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        p, traj = batch
        self.log("val_mse", F.mse_loss(self(p), traj))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.max_epochs * len(self.train_set))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(30)
    tr = TensorDataset(*simulate(4000, seed=1))
    va = TensorDataset(*simulate(800, seed=2))
    model = PendulumSurrogate(tr)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, val_dataloaders=DataLoader(va, batch_size=400))
    m = trainer.callback_metrics
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    print(f"SYMPTOM val_mse={float(m['val_mse']):.4f} final_lr={lr:.2e} target_var={float(va.tensors[1].var()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
