"""Bug: a physics-informed network for a damped harmonic oscillator u'' + 2 zeta omega u' + omega^2 u = 0
(omega = 2, zeta = 0.1, u(0) = 1, u'(0) = 0) on t in [0, 6]. A tanh MLP maps t to u; the loss is the ODE residual
(derivatives by autograd with create_graph) on mini-batches of 128 from 4096 random collocation times, plus the initial
conditions and 16 noisy sensor readings from the first two seconds. Adam with OneCycleLR (max lr 1e-2, the usual
30 % warm-up); validation compares u with the analytic solution on a grid.

`configure_optimizers` sizes the OneCycle schedule as `max_epochs * len(self.collocation)`, the number of
collocation *samples* per epoch, not the number of batches (an earlier version trained full-batch, where the two
were the same). The schedule is therefore 128x too long: training ends after 0.8 % of the intended steps, still
deep inside the warm-up, with the learning rate crawling up from max_lr / 25 = 4e-4 and never reaching the peak
or the annealing phase. The residual loss still goes down, just slowly. Symptom: val RMSE against the analytic
solution 0.332 (final lr 4.2e-4) with the mis-sized schedule vs 0.132 when total_steps is
`trainer.estimated_stepping_batches`."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout21"
OMEGA, ZETA, T_END = 2.0, 0.1, 6.0


def analytic(t):
    wd = OMEGA * math.sqrt(1 - ZETA ** 2)
    return torch.exp(-ZETA * OMEGA * t) * (torch.cos(wd * t) + ZETA * OMEGA / wd * torch.sin(wd * t))


class OscillatorPINN(L.LightningModule):
    def __init__(self, collocation, obs_t, obs_u, hidden=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["collocation", "obs_t", "obs_u"])
        self.collocation = collocation
        self.register_buffer("obs_t", obs_t)
        self.register_buffer("obs_u", obs_u)
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, t):
        return self.net(2 * t / T_END - 1)

    def training_step(self, batch, batch_idx):
        t = batch[0].requires_grad_(True)
        u = self(t)
        du = torch.autograd.grad(u.sum(), t, create_graph=True)[0]
        d2u = torch.autograd.grad(du.sum(), t, create_graph=True)[0]
        residual = d2u + 2 * ZETA * OMEGA * du + OMEGA ** 2 * u
        t0 = torch.zeros(1, 1, requires_grad=True)
        u0 = self(t0)
        du0 = torch.autograd.grad(u0.sum(), t0, create_graph=True)[0]
        loss_ic = (u0 - 1).pow(2).sum() + du0.pow(2).sum()
        loss_data = (self(self.obs_t) - self.obs_u).pow(2).mean()
        loss = 0.05 * residual.pow(2).mean() + loss_ic + loss_data
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        t, u_true = batch
        self.log("val_rmse", (self(t) - u_true).pow(2).mean().sqrt())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.max_epochs * len(self.collocation)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=total)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2106)
    g = torch.Generator().manual_seed(6)
    collocation = TensorDataset(T_END * torch.rand(4096, 1, generator=g))
    obs_t = 2.0 * torch.rand(16, 1, generator=g)
    obs_u = analytic(obs_t) + 0.02 * torch.randn(16, 1, generator=g)
    grid = torch.linspace(0, T_END, 400)[:, None]
    model = OscillatorPINN(collocation, obs_t, obs_u)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(collocation, batch_size=128, shuffle=True),
                DataLoader(TensorDataset(grid, analytic(grid)), batch_size=400))
    print(f"SYMPTOM val_rmse={float(trainer.callback_metrics['val_rmse']):.3f} "
          f"final_lr={trainer.optimizers[0].param_groups[0]['lr']:.2e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
