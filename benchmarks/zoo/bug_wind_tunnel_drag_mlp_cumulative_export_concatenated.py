"""Bug: regression of the drag force on a sphere in a wind tunnel from (air speed, diameter, air temperature,
surface roughness), an MLP on log-scaled features predicting log-drag, trained with Adam, gradient clipping and a
cosine schedule. The data are two "exports" of the tunnel's measurement log: campaign A (300 runs) and campaign B.

The logger's export for campaign B is cumulative - it repeats every run of campaign A before its own 200 new runs -
and the user concatenates `export_a` and `export_b` as if they were disjoint, then takes a random 80/20 split. About
half of the validation rows are exact copies (inputs *and* the noisy measured drag) of training rows, so the model
is rewarded for memorising measurement noise. Symptom: val MSE 0.037 on the overlapping split vs 0.051 when the
concatenated table is de-duplicated before splitting (the honest number); the duplicated val rows alone score
0.024, the unseen ones 0.051."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout17"


def tunnel_runs(n: int, g: torch.Generator) -> torch.Tensor:
    speed = 2.0 + 38.0 * torch.rand(n, generator=g)  # m/s
    diam = 0.02 + 0.18 * torch.rand(n, generator=g)  # m
    temp = 273.0 + 40.0 * torch.rand(n, generator=g)  # K
    rough = 1e-5 * 10 ** (2.0 * torch.rand(n, generator=g))  # m
    rho = 101325.0 / (287.05 * temp)
    mu = 1.716e-5 * (temp / 273.15) ** 1.5 * (273.15 + 110.4) / (temp + 110.4)
    re = rho * speed * diam / mu
    cd = 24 / re * (1 + 0.15 * re**0.687) + 0.42 / (1 + 4.25e4 * re**-1.16)
    cd = cd * (1 + 8.0 * (rough / diam) ** 0.5)  # rough spheres drag more
    drag = 0.5 * rho * speed**2 * cd * math.pi * diam**2 / 4
    drag = drag * torch.exp(0.35 * torch.randn(n, generator=g))  # balance noise
    return torch.stack([speed, diam, temp, rough, drag], 1)


class DragNet(L.LightningModule):
    def __init__(self, lr: float = 3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(), nn.Linear(512, 1))

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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": sched}


def main():
    L.seed_everything(404)
    g = torch.Generator().manual_seed(11)
    export_a = tunnel_runs(300, g)
    export_b = torch.cat([export_a, tunnel_runs(200, g)])  # the logger's export is cumulative
    table = torch.cat([export_a, export_b])
    feats = torch.log(table[:, :4])
    target = torch.log(table[:, 4])
    perm = torch.randperm(len(table), generator=torch.Generator().manual_seed(0))
    n_val = int(0.2 * len(table))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mu, sd = feats[train_idx].mean(0), feats[train_idx].std(0)
    t_mu, t_sd = target[train_idx].mean(), target[train_idx].std()
    x = (feats - mu) / sd
    y = (target - t_mu) / t_sd
    train = TensorDataset(x[train_idx], y[train_idx])
    val = TensorDataset(x[val_idx], y[val_idx])
    model = DragNet()
    trainer = L.Trainer(
        max_epochs=300,
        gradient_clip_val=1.0,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="wind_tunnel_drag"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=512))
    model.eval()
    with torch.no_grad():
        err = (model(x[val_idx]) - y[val_idx]) ** 2
    train_rows = {tuple(r.tolist()) for r in table[train_idx]}
    dup = torch.tensor([tuple(r.tolist()) in train_rows for r in table[val_idx]])
    print(f"SYMPTOM val_mse={err.mean():.4f} dup_frac={dup.float().mean():.2f} "
          f"val_mse_dup={err[dup].mean():.4f} val_mse_unseen={err[~dup].mean():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
