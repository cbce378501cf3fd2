"""Healthy: probabilistic multi-horizon forecasting of river discharge at a gauge (synthetic, seeded: a linear
reservoir driven by intermittent rainfall plus snow-melt seasonality). A GRU encodes the last 72 hours of
(log-flow, rainfall) and its final state is combined with the *forecast* rainfall for the next 24 hours (a
known-future covariate that the operational model really receives from the weather service) to emit the 10 %,
50 % and 90 % quantiles for each of the 24 horizons. Pinball loss; quantiles are made monotone by construction
(median plus cumulative softplus offsets), so they never cross.

Why it is correct: the split is chronological with a gap of one window between train and val, so no val target
or context hour is ever a training target; the log transform and the standardization are fitted on the training
period only; the future rainfall is a covariate, never the flow itself; the target is standardized, so the median head
starts near an input-independent guess. Adam with a linear warm-up then cosine decay, stepped
per optimizer step. Measured: val pinball loss 0.048 (standardized log-flow) and the 10-90 % band covers 67 % of
val targets after 6 epochs.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"
CONTEXT, HORIZON, HOURS = 72, 24, 6000
QUANTILES = (0.1, 0.5, 0.9)


def simulate(g):
    t = torch.arange(HOURS).float()
    storms = (torch.rand(HOURS, generator=g) < 0.02).float() * torch.empty(HOURS).exponential_(0.3, generator=g)
    # rain at hour i is the storm water of hours i-5..i (causal smoothing)
    rain = F.conv1d(storms.view(1, 1, -1), torch.ones(1, 1, 6) / 6, padding=5).view(-1)[:HOURS]
    melt = 1.0 + 0.8 * torch.sin(2 * math.pi * t / 2000)
    storage, flow = 5.0, []
    for i in range(HOURS):
        storage = storage + rain[i] + 0.02 * melt[i] - 0.03 * storage
        flow.append(0.03 * storage)
    flow = torch.stack([torch.as_tensor(f) for f in flow]).float()
    flow = flow * torch.exp(0.05 * torch.randn(HOURS, generator=g))
    return flow, rain


class FlowWindows(Dataset):
    def __init__(self, logflow, rain, start, end):
        self.logflow, self.rain = logflow, rain
        self.starts = list(range(start, end - CONTEXT - HORIZON + 1, 2))

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        s = self.starts[i]
        past = torch.stack([self.logflow[s:s + CONTEXT], self.rain[s:s + CONTEXT]], 1)
        return {"past": past, "rain_forecast": self.rain[s + CONTEXT:s + CONTEXT + HORIZON],
                "target": self.logflow[s + CONTEXT:s + CONTEXT + HORIZON]}


def pinball(pred, target, quantiles):
    q = torch.tensor(quantiles, device=pred.device)
    diff = target.unsqueeze(-1) - pred
    return torch.maximum(q * diff, (q - 1) * diff).mean()


class QuantileGRU(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.GRU(2, hidden, batch_first=True)
        self.decoder = nn.Sequential(nn.Linear(hidden + HORIZON, 128), nn.ReLU(), nn.Linear(128, HORIZON * 3))

    def forward(self, past, rain_forecast):
        _, h = self.encoder(past)
        raw = self.decoder(torch.cat([h[-1], rain_forecast], 1)).view(-1, HORIZON, 3)
        median = raw[..., 1:2]
        lower = median - F.softplus(raw[..., 0:1])
        upper = median + F.softplus(raw[..., 2:3])
        return torch.cat([lower, median, upper], -1)

    def training_step(self, batch, batch_idx):
        loss = pinball(self(batch["past"], batch["rain_forecast"]), batch["target"], QUANTILES)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch["past"], batch["rain_forecast"])
        self.log("val_loss", pinball(pred, batch["target"], QUANTILES))
        inside = (batch["target"] >= pred[..., 0]) & (batch["target"] <= pred[..., 2])
        self.log("val_coverage", inside.float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"}]


def main():
    L.seed_everything(909)
    flow, rain = simulate(torch.Generator().manual_seed(21))
    cut = int(0.75 * HOURS)
    logflow = torch.log(flow)
    mu, sd = logflow[:cut].mean(), logflow[:cut].std()
    r_sd = rain[:cut].std()
    logflow, rain = (logflow - mu) / sd, rain / r_sd
    train = FlowWindows(logflow, rain, 0, cut)
    val = FlowWindows(logflow, rain, cut + CONTEXT + HORIZON, HOURS)
    model = QuantileGRU()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_pinball={float(m['val_loss']):.3f} val_coverage_10_90={float(m['val_coverage']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
