"""Bug: next-day demand forecaster for a handful of stores (synthetic daily sales with a weekly profile, a slow
seasonal swing and a store-specific random-walk level), an LSTM over 28-day windows with a Gaussian head (mean and
softplus variance) trained with `F.gaussian_nll_loss`, Adam + StepLR, chronological split per store. The head
returns `mean` and `var` of shape (B, 1), as `nn.Linear(h, 1)` gives them, but the dataset yields the target as a
scalar per window, so the batch target is (B,). Unlike `F.mse_loss`, `gaussian_nll_loss` does not warn about the
mismatch: `(mean - target)` broadcasts to (B, B) and every prediction is scored against every target of the batch.
The loss is minimised by predicting the batch mean for every window, so the network learns to ignore its input.
Why a user writes it: the dataset returns `torch.tensor(y)` the way every regression tutorial does and the model
returns the usual `(B, 1)` head; the loss trains down smoothly and nothing complains.
Symptom: val RMSE (standardised units) 1.01 vs 0.16 with `target.unsqueeze(-1)`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout12"

WINDOW = 28


def make_sales(n_stores=6, n_days=700, seed=11):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n_days, dtype=torch.float32)
    weekly = torch.tensor([0.8, 0.9, 0.95, 1.0, 1.2, 1.6, 1.4])
    series = []
    for _ in range(n_stores):
        base = 80 + 60 * torch.rand(1, generator=g)
        level = torch.cumsum(0.8 * torch.randn(n_days, generator=g), 0)
        season = 15 * torch.sin(2 * torch.pi * t / 182 + 6.28 * torch.rand(1, generator=g))
        profile = weekly[(t.long() + int(torch.randint(0, 7, (1,), generator=g))) % 7]
        noise = 4 * torch.randn(n_days, generator=g)
        series.append((base + level + season) * profile + noise)
    return torch.stack(series)


class Windows(Dataset):
    def __init__(self, series, start, end):
        self.items = []
        for s in range(series.shape[0]):
            for i in range(start, end - WINDOW):
                self.items.append((series[s, i:i + WINDOW], series[s, i + WINDOW]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x, y = self.items[i]
        return x.unsqueeze(-1), y


class GaussianLSTM(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.mean_head = nn.Linear(hidden, 1)
        self.var_head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        h = out[:, -1]
        return self.mean_head(h), F.softplus(self.var_head(h)) + 1e-4

    def training_step(self, batch, batch_idx):
        x, y = batch
        mean, var = self(x)
        loss = F.gaussian_nll_loss(mean, y, var)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mean, var = self(x)
        self.log("val_nll", F.gaussian_nll_loss(mean, y, var))
        self.log("val_mse", F.mse_loss(mean.squeeze(-1), y), reduce_fx="mean")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


def main():
    L.seed_everything(2024)
    sales = make_sales()
    split = 560
    mu = sales[:, :split].mean(dim=1, keepdim=True)
    sd = sales[:, :split].std(dim=1, keepdim=True)
    z = (sales - mu) / sd
    train_ds = Windows(z, 0, split)
    val_ds = Windows(z, split - WINDOW, z.shape[1])
    train_dl = DataLoader(train_ds, batch_size=64, shuffle=True)
    val_dl = DataLoader(val_ds, batch_size=256)

    model = GaussianLSTM()
    trainer = L.Trainer(
        max_epochs=10,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="store_demand_gnll"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dl, val_dl)

    model.eval()
    with torch.no_grad():
        se, n = 0.0, 0
        for x, y in val_dl:
            mean, _ = model(x)
            se += float(((mean.squeeze(-1) - y) ** 2).sum())
            n += len(y)
    print(f"SYMPTOM val_rmse={(se / n) ** 0.5:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
