"""Healthy: a RealNVP normalizing flow on 2-D two-moons data: 8 affine coupling layers with alternating masks,
scale nets bounded by `tanh` times a learned per-dimension factor, ActNorm layers initialised from the first batch
(data-dependent init), standard-normal base, loss = negative log-likelihood in nats per sample (a continuous
density, so the loss has no floor at zero). Adam with cosine decay, gradient clipping at 5.
Final val NLL 0.59 nats (the standard-normal base alone gives 2.49)."""

import math

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"


def two_moons(n, g):
    t = math.pi * torch.rand(n, generator=g)
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, t.cos(), 1 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    return torch.stack([x, y], 1) + 0.06 * torch.randn(n, 2, generator=g)


class ActNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.loc, self.log_scale = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x):
        if not self.initialised:
            with torch.no_grad():
                self.loc.copy_(-x.mean(0))
                self.log_scale.copy_(-torch.log(x.std(0) + 1e-6))
                self.initialised.fill_(True)
        return (x + self.loc) * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])


class Coupling(nn.Module):
    def __init__(self, mask, hidden=64):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 4))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.s_scale = nn.Parameter(torch.ones(2))

    def forward(self, x):
        s, t = self.net(x * self.mask).chunk(2, 1)
        s = self.s_scale * torch.tanh(s) * (1 - self.mask)
        t = t * (1 - self.mask)
        return x * s.exp() + t, s.sum(1)


class RealNVP(L.LightningModule):
    def __init__(self, n_layers=8, lr=3e-3, epochs=30):
        super().__init__()
        self.save_hyperparameters()
        layers = []
        for k in range(n_layers):
            layers += [ActNorm(2), Coupling(torch.tensor([1.0, 0.0]) if k % 2 == 0 else torch.tensor([0.0, 1.0]))]
        self.layers = nn.ModuleList(layers)

    def nll(self, x):
        log_det = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        log_base = -0.5 * (x ** 2).sum(1) - math.log(2 * math.pi)
        return -(log_base + log_det).mean()

    def training_step(self, batch, batch_idx):
        loss = self.nll(batch[0])
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch[0]), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt,
                "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)}


def main():
    L.seed_everything(17)
    g = torch.Generator().manual_seed(17)
    x_tr, x_va = two_moons(8000, g), two_moons(2000, g)
    model = RealNVP()
    trainer = L.Trainer(max_epochs=30, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        gradient_clip_val=5.0, logger=TensorBoardLogger("lightning_logs", name="realnvp_moons"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x_tr), batch_size=256, shuffle=True),
                DataLoader(TensorDataset(x_va), batch_size=2000))
    base_only = (0.5 * (x_va ** 2).sum(1) + math.log(2 * math.pi)).mean().item()
    print(f"SYMPTOM val_nll={trainer.callback_metrics['val_nll'].item():.3f} base_only_nll={base_only:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
