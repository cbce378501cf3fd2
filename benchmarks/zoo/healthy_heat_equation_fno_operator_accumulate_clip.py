"""Healthy: a small Fourier neural operator learns the solution operator of the 1-D periodic heat equation
u_t = nu * u_xx: from the initial condition u0 (random Fourier series, 64 grid points) and the diffusivity nu to the
solution at T=1 (computed exactly in Fourier space). Inputs are u0, nu and the grid's sin/cos coordinates as
channels; three spectral-convolution blocks (12 modes) with pointwise skips; relative-L2 loss, Adam with StepLR,
gradient accumulation over 2 batches and gradient-norm clipping.
Final metric: val relative L2 error ~0.01."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
N_GRID, N_MODES_IC = 64, 10


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(N_GRID) * 2 * math.pi / N_GRID
    k = torch.arange(1, N_MODES_IC + 1).float()
    a = torch.randn(n, N_MODES_IC, generator=g) / k
    b = torch.randn(n, N_MODES_IC, generator=g) / k
    nu = 0.005 + 0.1 * torch.rand(n, 1, generator=g)
    basis_c, basis_s = torch.cos(k[:, None] * x[None]), torch.sin(k[:, None] * x[None])
    u0 = a @ basis_c + b @ basis_s
    decay = torch.exp(-nu * k[None] ** 2)
    uT = (a * decay) @ basis_c + (b * decay) @ basis_s
    inputs = torch.stack([u0, (nu - 0.055) / 0.03 * torch.ones_like(u0),
                          torch.sin(x).expand_as(u0), torch.cos(x).expand_as(u0)], 1)
    return inputs, uT.unsqueeze(1)


class SpectralConv1d(nn.Module):
    def __init__(self, width, modes):
        super().__init__()
        self.modes = modes
        scale = 1 / (width * width)
        self.weight = nn.Parameter(scale * torch.randn(width, width, modes, dtype=torch.cfloat))

    def forward(self, x):
        xf = torch.fft.rfft(x)
        out = torch.zeros_like(xf)
        out[:, :, :self.modes] = torch.einsum("bim,iom->bom", xf[:, :, :self.modes], self.weight)
        return torch.fft.irfft(out, n=x.shape[-1])


class FNO1d(L.LightningModule):
    def __init__(self, width=32, modes=12, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.lift = nn.Conv1d(4, width, 1)
        self.spectral = nn.ModuleList([SpectralConv1d(width, modes) for _ in range(3)])
        self.pointwise = nn.ModuleList([nn.Conv1d(width, width, 1) for _ in range(3)])
        self.project = nn.Sequential(nn.Conv1d(width, 64, 1), nn.GELU(), nn.Conv1d(64, 1, 1))

    def forward(self, x):
        h = self.lift(x)
        for i, (spec, pw) in enumerate(zip(self.spectral, self.pointwise)):
            h = spec(h) + pw(h)
            if i < len(self.spectral) - 1:
                h = nn.functional.gelu(h)
        return self.project(h)

    @staticmethod
    def rel_l2(pred, target):
        return ((pred - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1)).mean()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.rel_l2(self(x), y)
        self.log("train_rel_l2", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_rel_l2", self.rel_l2(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.5)]


def main():
    L.seed_everything(64)
    tr = TensorDataset(*make_pairs(2000, seed=1))
    va = TensorDataset(*make_pairs(400, seed=2))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, accumulate_grad_batches=2,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FNO1d(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=200))
    print(f"SYMPTOM val_rel_l2={float(trainer.callback_metrics['val_rel_l2']):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
