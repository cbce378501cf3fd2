"""Bug: predictive maintenance - will a pump fail within 24 h? A 1-D CNN reads a 3-axis vibration window (128
samples) and an MLP branch reads the asset metadata joined from the maintenance system (pump age, load, hours since
service, and `downtime_minutes`). The user joined every column of the maintenance table on (pump, day); but
`downtime_minutes` is filled in by the technician *after* the breakdown - it is 0 for every window not followed by a
failure and positive for those that are. The column decides the label on its own, so the model reads the answer and
the vibration branch learns only part of what it could; at prediction time the column is always 0. Symptom: val F1
0.99 with the column, but 0.72 when it is zeroed as it will be in production; with the column dropped from the
features the model reaches val F1 0.84, and the same 0.84 in production."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout18"
META = ["age_years", "load_pct", "hours_since_service", "downtime_minutes"]
USE_META = META


def make_windows(n, g):
    fail = (torch.rand(n, generator=g) < 0.25).long()
    t = torch.arange(128) / 128
    rpm = 20 + 4 * torch.rand(n, 1, generator=g)
    base = torch.sin(2 * torch.pi * rpm * t)
    x = torch.stack([base, 0.5 * base.roll(5, 1), 0.3 * base], 1) + 0.5 * torch.randn(n, 3, 128, generator=g)
    # a failing bearing adds a weak high-frequency modulation with impacts
    impacts = (torch.rand(n, 1, 128, generator=g) < 0.04).float() * 1.2
    bearing = 0.25 * torch.sin(2 * torch.pi * 47 * t) + impacts.squeeze(1)
    x[:, 0] += fail[:, None] * bearing
    age = 2 + 8 * torch.rand(n, generator=g) + 2 * fail
    load = 60 + 20 * torch.randn(n, generator=g)
    service = 2000 * torch.rand(n, generator=g)
    downtime = fail * (30 + 300 * torch.rand(n, generator=g))
    meta = torch.stack([age, load, service, downtime], 1)
    return x, meta, fail


class FailurePredictor(L.LightningModule):
    def __init__(self, meta_mean, meta_std, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.vib = nn.Sequential(nn.Conv1d(3, 32, 7, padding=3), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
                                 nn.Conv1d(32, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.meta = nn.Sequential(nn.Linear(len(USE_META), 16), nn.ReLU())
        self.head = nn.Linear(64 + 16, 1)
        self.register_buffer("meta_mean", meta_mean)
        self.register_buffer("meta_std", meta_std)

    def forward(self, x, meta):
        m = (meta - self.meta_mean) / self.meta_std
        return self.head(torch.cat([self.vib(x), self.meta(m)], 1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, meta, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x, meta), y.float(), pos_weight=torch.tensor(3.0))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, meta, y = batch
        logits = self(x, meta)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y.float()), prog_bar=True)
        self.log("val_f1", f1(logits, y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def f1(logits, y):
    pred = (logits > 0).long()
    tp = ((pred == 1) & (y == 1)).sum().float()
    return 2 * tp / (pred.sum() + y.sum()).clamp(min=1)


if __name__ == "__main__":
    L.seed_everything(24)
    g = torch.Generator().manual_seed(24)
    x_tr, meta_tr, y_tr = make_windows(3000, g)
    x_va, meta_va, y_va = make_windows(800, g)
    cols = [META.index(c) for c in USE_META]
    meta_tr, meta_va = meta_tr[:, cols], meta_va[:, cols]
    model = FailurePredictor(meta_tr.mean(0), meta_tr.std(0))
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="pump_failure"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(x_tr, meta_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, meta_va, y_va), batch_size=400))
    model.eval()
    with torch.no_grad():
        production = meta_va.clone()
        if "downtime_minutes" in USE_META:
            production[:, USE_META.index("downtime_minutes")] = 0.0  # not known before the failure
        prod_f1 = float(f1(model(x_va, production), y_va))
    print(f"SYMPTOM val_f1={float(trainer.callback_metrics['val_f1']):.3f} production_f1={prod_f1:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
