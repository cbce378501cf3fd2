"""Bug: lithium-ion cell capacity-fade regression (state of health after N cycles from cycle count, temperature,
charge rate, depth of discharge and two electrode-chemistry fractions; synthetic, with a known Arrhenius-like fade
law) with an MLP, SGD + Nesterov momentum and a per-step LambdaLR "linear warm-up for 5 % of training, then cosine".

The warm-up length is written as `int(0.1 * len(self.train_ds) * self.trainer.max_epochs)`: the user meant
"5 % of the optimizer steps" but multiplied the number of *samples* by the epochs. With 3,200 training rows and a
batch of 64 that is 3,200 warm-up steps out of a 1,000-step run, so the learning rate only climbs to about a third
of its peak and never reaches the cosine phase. The run converges, just slowly. Symptom: val RMSE 2.14 (% SoH) vs
0.93 with `warmup = int(0.05 * self.trainer.estimated_stepping_batches)`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout17"


def fade_dataset(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    cycles = 50 + 1950 * torch.rand(n, generator=g)
    temp_c = 10 + 35 * torch.rand(n, generator=g)
    c_rate = 0.3 + 2.7 * torch.rand(n, generator=g)
    dod = 0.2 + 0.8 * torch.rand(n, generator=g)
    nickel = torch.rand(n, generator=g)
    silicon = 0.15 * torch.rand(n, generator=g)
    arrhenius = torch.exp(-3500.0 * (1 / (temp_c + 273.15) - 1 / 298.15))
    k = 0.012 * arrhenius * (1 + 0.35 * c_rate**1.5) * dod**1.2 * (1 + 0.8 * nickel) * (1 + 4 * silicon)
    soh = 100 - 4.0 * k * cycles**0.55 - 0.4 * (cycles / 1000) ** 2 * c_rate
    soh = soh + 0.5 * torch.randn(n, generator=g)
    x = torch.stack([cycles, temp_c, c_rate, dod, nickel, silicon], 1)
    return x, soh


class FadeRegressor(L.LightningModule):
    def __init__(self, train_ds, lr: float = 0.02, t_mu: float = 0.0, t_sd: float = 1.0):
        super().__init__()
        self.save_hyperparameters(ignore=["train_ds"])
        self.train_ds = train_ds
        self.net = nn.Sequential(nn.Linear(6, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mse = F.mse_loss(self(x), y)
        self.log("val_mse", mse)
        self.log("val_rmse_soh", mse.sqrt() * self.hparams.t_sd)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
        total = self.trainer.estimated_stepping_batches
        warmup = int(0.1 * len(self.train_ds) * self.trainer.max_epochs)

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(77)
    x, y = fade_dataset(4000, seed=3)
    n_train = 3200
    mu, sd = x[:n_train].mean(0), x[:n_train].std(0)
    t_mu, t_sd = y[:n_train].mean(), y[:n_train].std()
    x = (x - mu) / sd
    y = (y - t_mu) / t_sd
    train_ds = TensorDataset(x[:n_train], y[:n_train])
    val_ds = TensorDataset(x[n_train:], y[n_train:])
    model = FadeRegressor(train_ds, t_mu=float(t_mu), t_sd=float(t_sd))
    trainer = L.Trainer(
        max_epochs=20,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="battery_fade"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=400))
    print(f"SYMPTOM val_rmse_soh={trainer.callback_metrics['val_rmse_soh']:.3f} "
          f"final_lr={trainer.optimizers[0].param_groups[0]['lr']:.4g}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
