"""Bug: a multi-store daily sales forecaster (causal dilated TCN over 56 past days, per-horizon MLP decoder over the
covariates known for the next 14 days). The pipeline uses one feature list for the encoder and the decoder,
`FUTURE_COLS = PAST_COLS`, so the "known future covariates" of each horizon day include that day's `sales`, the
value the model must forecast. Validation windows are cut the same way, so validation agrees: val MSE 0.000 in
scaled units, "too good to be true" next to the fixed pipeline (future covariates = calendar and planned promotions
only; healthy twin `healthy_tcn_forecaster_known_future_covariates.py`): 0.295 (seasonal naive 0.905). In production
the future sales are not known and the model fails. Adam, ReduceLROnPlateau on val_loss; split by time."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout5"
STORES, DAYS, PAST, HORIZON, CUT = 64, 400, 56, 14, 300
COLUMNS = ["sales", "dow_sin", "dow_cos", "promo"]
PAST_COLS = ["sales", "dow_sin", "dow_cos", "promo"]
FUTURE_COLS = PAST_COLS  # the same feature list for the encoder and the decoder


def store_frames(seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(DAYS)
    dow = t % 7
    weekly = torch.tensor([0.0, -2.0, -1.0, 0.0, 3.0, 9.0, 6.0])
    level = 40 + 20 * torch.rand(STORES, 1, generator=g)
    promo = (torch.rand(STORES, DAYS, generator=g) < 0.15).float()
    noise = torch.zeros(STORES, DAYS)
    eps = 3.0 * torch.randn(STORES, DAYS, generator=g)
    for i in range(1, DAYS):
        noise[:, i] = 0.8 * noise[:, i - 1] + eps[:, i]
    sales = level + weekly[dow] + 12.0 * promo + noise
    mean, std = sales[:, :CUT].mean(), sales[:, :CUT].std()  # scaler fitted on the training period
    frame = torch.stack([(sales - mean) / std, torch.sin(2 * torch.pi * dow / 7).expand(STORES, -1),
                         torch.cos(2 * torch.pi * dow / 7).expand(STORES, -1), promo], dim=-1)
    return frame


def windows(frame, starts):
    past_idx = [COLUMNS.index(c) for c in PAST_COLS]
    fut_idx = [COLUMNS.index(c) for c in FUTURE_COLS]
    past, fut, tgt = [], [], []
    for t in starts:
        past.append(frame[:, t - PAST:t][..., past_idx])
        fut.append(frame[:, t:t + HORIZON][..., fut_idx])
        tgt.append(frame[:, t:t + HORIZON, 0])
    return TensorDataset(torch.cat(past), torch.cat(fut), torch.cat(tgt))


class CausalBlock(nn.Module):
    def __init__(self, ch, dilation):
        super().__init__()
        self.pad = 2 * dilation
        self.conv = nn.Conv1d(ch, ch, 3, dilation=dilation)
        self.norm = nn.GroupNorm(1, ch)

    def forward(self, x):
        return x + F.gelu(self.norm(self.conv(F.pad(x, (self.pad, 0)))))


class TCNForecaster(L.LightningModule):
    def __init__(self, ch=48, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(len(PAST_COLS), ch, 1)
        self.tcn = nn.Sequential(*[CausalBlock(ch, d) for d in (1, 2, 4, 8)])
        self.horizon = nn.Embedding(HORIZON, 16)
        self.dec = nn.Sequential(nn.Linear(ch + len(FUTURE_COLS) + 16, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, past, future):
        ctx = self.tcn(self.inp(past.transpose(1, 2)))[:, :, -1]
        b = past.shape[0]
        h = self.horizon.weight.unsqueeze(0).expand(b, -1, -1)
        z = torch.cat([ctx.unsqueeze(1).expand(-1, HORIZON, -1), future, h], dim=-1)
        return self.dec(z).squeeze(-1)

    def training_step(self, batch, batch_idx):
        past, fut, y = batch
        loss = F.mse_loss(self(past, fut), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        past, fut, y = batch
        self.log("val_loss", F.mse_loss(self(past, fut), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(5102)
    frame = store_frames()
    train = windows(frame, range(PAST, CUT - HORIZON + 1, 4))
    val = windows(frame, range(CUT, DAYS - HORIZON + 1, 7))
    naive = F.mse_loss(val.tensors[0][:, -7:, 0].repeat(1, 2), val.tensors[2])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TCNForecaster(), DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=512))
    print(f"val_mse={float(trainer.callback_metrics['val_loss']):.3f} (seasonal naive {float(naive):.3f})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
