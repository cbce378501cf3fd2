"""Healthy: breast-cancer MLP with a LightningDataModule whose `setup(stage)` builds a stratified train/val split and
fits the standardisation on the training split only (the fitted statistics are kept on the datamodule, so every split
is transformed with the same train-only scaler). Validation has two dataloaders: index 0 is the clean held-out set,
index 1 is the same held-out patients with simulated measurement noise (a robustness probe; no sample of it is in
training). `validation_step(batch, batch_idx, dataloader_idx=0)` logs per loader; Lightning suffixes the keys with
`/dataloader_idx_{i}`, and ReduceLROnPlateau, ModelCheckpoint and EarlyStopping all monitor the clean loader's
`val_loss/dataloader_idx_0`. LearningRateMonitor records the plateau cuts.
Own metric (early-stopped at epoch 26): clean val acc 0.979 (val loss 0.039), noisy val acc 0.972.
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"

MONITOR = "val_loss/dataloader_idx_0"


class TumourDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32, noise_std=0.3, seed=21):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage):
        data = load_breast_cancer()
        x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.25, stratify=data.target,
                                                  random_state=self.hparams.seed)
        x_tr, x_va = torch.tensor(x_tr, dtype=torch.float32), torch.tensor(x_va, dtype=torch.float32)
        self.mean, self.std = x_tr.mean(0), x_tr.std(0)
        x_tr, x_va = (x_tr - self.mean) / self.std, (x_va - self.mean) / self.std
        noise = torch.randn(x_va.shape, generator=torch.Generator().manual_seed(self.hparams.seed))
        self.train_set = TensorDataset(x_tr, torch.tensor(y_tr))
        self.val_clean = TensorDataset(x_va, torch.tensor(y_va))
        self.val_noisy = TensorDataset(x_va + self.hparams.noise_std * noise, torch.tensor(y_va))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return [DataLoader(self.val_clean, batch_size=256), DataLoader(self.val_noisy, batch_size=256)]


class TumourMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": MONITOR, "interval": "epoch"}}


def main():
    L.seed_everything(21)
    callbacks = lightning_sanity.default_callbacks() + [
        ModelCheckpoint(monitor=MONITOR, mode="min", save_top_k=1),
        EarlyStopping(monitor=MONITOR, mode="min", patience=8),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, callbacks=callbacks)
    trainer.fit(TumourMLP(), datamodule=TumourDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM clean_acc={m['val_acc/dataloader_idx_0'].item():.3f} "
          f"clean_loss={m[MONITOR].item():.3f} noisy_acc={m['val_acc/dataloader_idx_1'].item():.3f} "
          f"epochs={trainer.current_epoch}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
