"""Bug: regression of food-delivery durations (minutes, standardised for training) from order features: distance,
basket size, courier load, restaurant prep-time estimate, rain flag and hour of day as sin/cos, with an MLP
(dropout, Adam, Huber loss). The numeric columns go through a StandardScaler fitted on the training rows. Later
the user noticed a slow upward drift in durations over the months and added the order's Unix timestamp "as a
trend feature" - appended with `np.column_stack` *after* the scaler, so one input column is ~1.7e9 while the
others are O(1). The first layer's pre-activations are dominated by that column, Adam spends the run shrinking
its weights, and the informative features are drowned. Symptom: val RMSE 0.967 (in target std units; predicting
the training mean gives 0.965) vs 0.269 when the timestamp is scaled with the other columns."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout13"
T0 = 1_690_000_000  # July 2023


def make_orders(n, seed):
    g = torch.Generator().manual_seed(seed)
    distance = 0.5 + 7.5 * torch.rand(n, generator=g)
    basket = torch.randint(1, 12, (n,), generator=g).float()
    load = torch.randint(0, 6, (n,), generator=g).float()
    prep = 5 + 20 * torch.rand(n, generator=g)
    rain = (torch.rand(n, generator=g) < 0.2).float()
    ts = T0 + torch.rand(n, generator=g, dtype=torch.float64) * 180 * 86400
    hour = ((ts / 3600) % 24).float()
    rush = torch.exp(-((hour - 12.5) ** 2) / 2) + torch.exp(-((hour - 19) ** 2) / 2)
    months = ((ts - T0) / (30 * 86400)).float()
    minutes = (8 + 3.2 * distance * (1 + 0.4 * rain) + 0.6 * basket + prep * (1 + 0.15 * load)
               + 9 * rush + 1.2 * months + 3 * torch.randn(n, generator=g))
    numeric = torch.stack([distance, basket, load, prep, rain, torch.sin(2 * np.pi * hour / 24),
                           torch.cos(2 * np.pi * hour / 24)], dim=1).numpy()
    return numeric, ts.numpy(), minutes.numpy()


class DeliveryMLP(L.LightningModule):
    def __init__(self, n_in, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                                 nn.Dropout(0.1), nn.Linear(64, 1))
        self.val_rmse = float("nan")

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.huber_loss(self(x), y)
        self.log("train_huber", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_rmse", F.mse_loss(self(x), y).sqrt())

    def on_validation_epoch_end(self):
        self.val_rmse = float(self.trainer.callback_metrics["val_rmse"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2718)
    num_t, ts_t, y_t = make_orders(6000, seed=1)
    num_v, ts_v, y_v = make_orders(1500, seed=2)
    scaler = StandardScaler().fit(num_t)
    X_t = np.column_stack([scaler.transform(num_t), ts_t]).astype(np.float32)
    X_v = np.column_stack([scaler.transform(num_v), ts_v]).astype(np.float32)
    mu, sd = y_t.mean(), y_t.std()
    y_t, y_v = ((y_t - mu) / sd).astype(np.float32), ((y_v - mu) / sd).astype(np.float32)
    train = TensorDataset(torch.from_numpy(X_t), torch.from_numpy(y_t))
    val = TensorDataset(torch.from_numpy(X_v), torch.from_numpy(y_v))
    model = DeliveryMLP(n_in=X_t.shape[1])
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="delivery_time_mlp"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=1024))
    print(f"SYMPTOM val_rmse={model.val_rmse:.3f} (std units; mean predictor {float(np.sqrt((y_v ** 2).mean())):.3f})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
