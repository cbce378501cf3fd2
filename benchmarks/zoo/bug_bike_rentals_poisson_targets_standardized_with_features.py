"""Bug (loss input): "scale every numeric column": the standard scaler is fitted on the training rows of the whole
numeric table, the rental count column included, so the `nn.PoissonNLLLoss(log_input=True)` targets are z-scores
(half of them negative) instead of counts. A Poisson rate is positive, so every below-average hour is out of
reach. Predictions are mapped back with the count column's mean/std for the metric. Symptom: val MAE 4.35
rentals/hour vs 1.98 with the counts left raw (predicting the mean: 4.4).

Model: embeddings for hour/weekday/weather plus standardized weather numbers, an MLP predicting the log rate,
streamed shards through an `IterableDataset`, Adam, `max_steps`, ExponentialLR per step."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout5"


def make_rentals(n, gen):
    hour = torch.randint(0, 24, (n,), generator=gen)
    weekday = torch.randint(0, 7, (n,), generator=gen)
    weather = torch.randint(0, 4, (n,), generator=gen)
    temp = 15 + 8 * torch.randn(n, generator=gen)
    hum = 60 + 15 * torch.randn(n, generator=gen)
    wind = 10 * torch.rand(n, generator=gen)
    workday = (weekday < 5).float()
    commute = torch.exp(-((hour.float() - 8) ** 2) / 3) + torch.exp(-((hour.float() - 17.5) ** 2) / 4)
    leisure = torch.exp(-((hour.float() - 14) ** 2) / 12)
    log_rate = 1.8 + 1.6 * (workday * commute + (1 - workday) * 1.2 * leisure) + 0.03 * (temp - 15) \
        - 0.01 * (hum - 60) - 0.05 * wind - torch.tensor([0.0, 0.2, 0.7, 1.5])[weather]
    counts = torch.poisson(torch.exp(log_rate), generator=gen)
    num = torch.stack([temp, hum, wind], 1)
    return torch.stack([hour, weekday, weather], 1), num, counts


class ShardStream(IterableDataset):
    """Yields rows shard by shard in a shuffled shard order, rows shuffled within each shard."""

    def __init__(self, cats, num, counts, shard_size=256, seed=0):
        self.cats, self.num, self.counts = cats, num, counts
        self.shard_size, self.seed, self.epoch = shard_size, seed, 0

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        n_shards = math.ceil(len(self.counts) / self.shard_size)
        for s in torch.randperm(n_shards, generator=gen).tolist():
            lo = s * self.shard_size
            idx = lo + torch.randperm(min(self.shard_size, len(self.counts) - lo), generator=gen)
            for i in idx.tolist():
                yield self.cats[i], self.num[i], self.counts[i]


class RentalModel(nn.Module):
    def __init__(self, mean_count, n_num=3, hidden=64):
        super().__init__()
        self.hour, self.weekday, self.weather = nn.Embedding(24, 6), nn.Embedding(7, 3), nn.Embedding(4, 2)
        self.mlp = nn.Sequential(nn.Linear(6 + 3 + 2 + n_num, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        nn.init.constant_(self.mlp[-1].bias, math.log(mean_count))

    def forward(self, cats, num):
        h = torch.cat([self.hour(cats[:, 0]), self.weekday(cats[:, 1]), self.weather(cats[:, 2]), num], 1)
        return self.mlp(h).squeeze(-1)


class LitRentals(L.LightningModule):
    def __init__(self, mean_count, max_steps):
        super().__init__()
        self.model = RentalModel(mean_count)
        self.loss_fn = nn.PoissonNLLLoss(log_input=True)
        self.max_steps = max_steps

    def training_step(self, batch, batch_idx):
        cats, num, counts = batch
        loss = self.loss_fn(self.model(cats, num), counts)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        cats, num, counts = batch
        log_rate = self.model(cats, num)
        self.log("val_loss", self.loss_fn(log_rate, counts))
        true = counts * self.count_sd + self.count_mu
        self.log("val_mae", (self.predict_counts(log_rate) - true).abs().mean())

    def predict_counts(self, log_rate):
        return log_rate.exp() * self.count_sd + self.count_mu

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        gamma = 0.1 ** (1 / self.max_steps)  # lr falls tenfold over the planned run
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(97)
    gen = torch.Generator().manual_seed(89)
    cats, num, counts = make_rentals(6000, gen)
    tr, va = slice(0, 5000), slice(5000, None)
    raw_counts, mean_count = counts, counts[tr].mean().item()
    table = torch.cat([num, counts.unsqueeze(1)], 1)  # every numeric column
    mu, sd = table[tr].mean(0), table[tr].std(0)
    table = (table - mu) / sd
    num, counts = table[:, :3], table[:, 3]
    max_steps = 600
    model = LitRentals(mean_count, max_steps)
    model.count_mu, model.count_sd = mu[3].item(), sd[3].item()
    trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(ShardStream(cats[tr], num[tr], counts[tr]), batch_size=64),
                DataLoader(TensorDataset(cats[va], num[va], counts[va]), batch_size=500))
    base = (raw_counts[va] - mean_count).abs().mean()
    print(f"val_mae={trainer.callback_metrics['val_mae'].item():.3f} mean_baseline={base:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
