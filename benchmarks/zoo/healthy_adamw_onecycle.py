"""Healthy: MLP with LayerNorm on digits trained with AdamW and OneCycleLR stepped every batch (the schedule
starts at max_lr/25, peaks at 30 % and anneals to max_lr/1e4 at the very end)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class OneCycleMLP(L.LightningModule):
    def __init__(self, max_lr=5e-3, epochs=6):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.LayerNorm(128), nn.SiLU(), nn.Dropout(0.1), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.max_lr, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(21)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    x = (x - x[:1400].mean(0)) / (x[:1400].std(0) + 1e-6)
    y = torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(OneCycleMLP(), DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=256))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
