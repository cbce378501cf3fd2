"""Healthy: density estimation on 2-D "two moons" with a RealNVP normalising flow. Points are sampled from two
interleaved half-circles with Gaussian jitter (seeded generator), standardised with the training points' mean and
std; validation is an independent draw. The flow stacks 6 affine coupling layers with alternating masks: the
conditioner sees only the frozen coordinate, outputs a shift and a log-scale that is bounded with `2 * tanh(s / 2)`
for stability (the last conditioner layer starts near zero, so the flow starts near the identity), and the change of
variables adds sum(log-scale) to the log-determinant (forward direction data -> latent). The loss is the exact
negative log-likelihood -log N(z; 0, I) - log|det J|, averaged per point (nats). A standard Gaussian fit of the
standardised data gives 2.84 nats; the flow must and does go well below it. Own metric: val NLL 2.21 nats per point
(train 2.23), against 2.84 for the identity flow at initialisation."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"


def two_moons(n, gen, noise=0.08):
    t = math.pi * torch.rand(n, generator=gen)
    upper = torch.rand(n, generator=gen) < 0.5
    x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=gen)


class Coupling(nn.Module):
    def __init__(self, mask, hidden=64):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 4))
        nn.init.normal_(self.net[-1].weight, std=1e-2)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x):
        shift, s = self.net(x * self.mask).chunk(2, dim=-1)
        log_scale = 2 * torch.tanh(s / 2) * (1 - self.mask)
        z = x * self.mask + (1 - self.mask) * (x * log_scale.exp() + shift)
        return z, log_scale.sum(-1)


class RealNVP(L.LightningModule):
    def __init__(self, n_layers=6, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        masks = [torch.tensor([1.0, 0.0]) if i % 2 == 0 else torch.tensor([0.0, 1.0]) for i in range(n_layers)]
        self.layers = nn.ModuleList(Coupling(m) for m in masks)

    def forward(self, x):
        log_det = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def nll(self, x):
        z, log_det = self(x)
        log_pz = -0.5 * (z ** 2).sum(-1) - math.log(2 * math.pi)
        return -(log_pz + log_det).mean()

    def training_step(self, batch, batch_idx):
        loss = self.nll(batch[0])
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs, eta_min=2e-4)
        return [opt], [sched]


def main():
    L.seed_everything(22)
    gen = torch.Generator().manual_seed(22)
    x_tr, x_va = two_moons(3000, gen), two_moons(1000, gen)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    train = DataLoader(TensorDataset((x_tr - mu) / sd), batch_size=128, shuffle=True)
    val = DataLoader(TensorDataset((x_va - mu) / sd), batch_size=1000)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RealNVP(), train, val)
    print(f"SYMPTOM val_nll={trainer.callback_metrics['val_nll'].item():.3f} "
          f"train_nll={trainer.callback_metrics['train_nll'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
