"""Healthy: diabetes progression regression, BatchNorm MLP, with Lightning's `StochasticWeightAveraging` callback
(averaging from 60% of the epochs, cosine annealing to a constant SWA learning rate over 3 epochs),
`LearningRateMonitor`, validation every second epoch (`check_val_every_n_epoch=2`), and a `predict_step` used after
`fit` to un-standardise predictions on the held-out patients. Features and target are standardised with
training-split statistics in every stage, and the prediction is mapped back to the original units only in
`predict_step`, so train and val losses are in the same standardised units. The SWA callback swaps the averaged
weights in at the end of training and recomputes BatchNorm running statistics with one forward pass over the
training data, so the averaged model's BN statistics match its weights.
StepLR runs until the SWA phase, where the callback takes over the learning rate. Own metric: last val MSE 0.565
(standardised), RMSE 58.0 in original units from `trainer.predict` with the averaged weights (the train mean
gives RMSE 76.7).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor, StochasticWeightAveraging
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"


class ProgressionMLP(L.LightningModule):
    def __init__(self, y_mean, y_std, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        x, _ = batch
        return self(x) * self.hparams.y_std + self.hparams.y_mean

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return {"optimizer": opt,
                "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)}


def main():
    L.seed_everything(99)
    data = load_diabetes(scaled=False)
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(99))
    tr, va = perm[:350], perm[350:]
    x = (x - x[tr].mean(0)) / x[tr].std(0)
    y_mean, y_std = y[tr].mean().item(), y[tr].std().item()
    z = (y - y_mean) / y_std
    train = TensorDataset(x[tr], z[tr])
    val_loader = DataLoader(TensorDataset(x[va], z[va]), batch_size=128)
    model = ProgressionMLP(y_mean, y_std)
    callbacks = lightning_sanity.default_callbacks() + [
        StochasticWeightAveraging(swa_lrs=5e-4, swa_epoch_start=0.6, annealing_epochs=3),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, check_val_every_n_epoch=2,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=5,
                        callbacks=callbacks)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, drop_last=True), val_loader)
    val_loss = trainer.callback_metrics["val_loss"].item()
    preds = torch.cat(trainer.predict(model, val_loader))
    rmse = (preds - y[va]).pow(2).mean().sqrt().item()
    baseline = (y_mean - y[va]).pow(2).mean().sqrt().item()
    print(f"SYMPTOM val_loss={val_loss:.3f} rmse={rmse:.1f} "
          f"mean_baseline_rmse={baseline:.1f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
