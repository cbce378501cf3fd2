"""Bug: flow-rate regression for a gas orifice meter: an MLP predicts the standardised mass flow from upstream
pressure (Pa), differential pressure (Pa), gas temperature (K), orifice diameter (m) and pipe diameter (m). The
labels come from the ISO 5167 orifice equation with a Reader-Harris/Gallagher-like discharge coefficient and 2 %
measurement noise. AdamW with a StepLR decay.

The user standardises the target ("it spans orders of magnitude") but feeds the features in their SI units,
reasoning that they are "already physical quantities": the upstream pressure is ~1e5-1e6, the differential
pressure ~1e3-5e4, the temperature ~300 and the diameters ~0.01-0.3. The first layer's pre-activations are
dominated by the pressures, most ReLUs sit in one regime, and Adam's per-parameter steps are far too small to
rescale weights that must shrink by five orders of magnitude. The run finishes without any warning, with a fit worse than predicting the mean.
Symptom: val MSE 83 (R^2 -76) vs 0.0007 (R^2 0.999) when the features are log-transformed and standardised with
train statistics."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout17"


def orifice_readings(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    p1 = 1e5 + 9e5 * torch.rand(n, generator=g)  # Pa
    dp = 1e3 + 4.9e4 * torch.rand(n, generator=g)  # Pa
    temp = 260.0 + 80.0 * torch.rand(n, generator=g)  # K
    pipe = 0.05 + 0.25 * torch.rand(n, generator=g)  # m
    beta = 0.2 + 0.55 * torch.rand(n, generator=g)
    bore = beta * pipe
    rho = p1 / (518.3 * temp)  # natural gas
    eps = 1 - (0.351 + 0.256 * beta**4 + 0.93 * beta**8) * (1 - (1 - dp / p1) ** (1 / 1.3))
    cd = 0.5961 + 0.0261 * beta**2 - 0.216 * beta**8
    q = cd / torch.sqrt(1 - beta**4) * eps * math.pi / 4 * bore**2 * torch.sqrt(2 * dp * rho)  # kg/s
    q = q * (1 + 0.02 * torch.randn(n, generator=g))
    return torch.stack([p1, dp, temp, bore, pipe], 1), q


class OrificeMLP(L.LightningModule):
    def __init__(self, lr: float = 2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(5, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(), nn.Linear(96, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.3)}


def main():
    L.seed_everything(5167)
    x, q = orifice_readings(3000, seed=9)
    n_train = 2400
    y = torch.log(q)
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    train = TensorDataset(x[:n_train], y[:n_train])
    val = TensorDataset(x[n_train:], y[n_train:])
    model = OrificeMLP()
    trainer = L.Trainer(
        max_epochs=24,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="orifice_flow"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=600))
    model.eval()
    with torch.no_grad():
        mse = F.mse_loss(model(val.tensors[0]), val.tensors[1]).item()
    print(f"SYMPTOM val_mse={mse:.4f} val_r2={1 - mse / val.tensors[1].var().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
