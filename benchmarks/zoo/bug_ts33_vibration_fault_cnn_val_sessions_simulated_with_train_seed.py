"""Bug: a 1-D CNN classifies 64-step, 3-axis vibration recordings from a machine test rig into 4 fault classes (which
axis carries a resonance burst, or none). The labels come from technicians and about a quarter of them are wrong.
Recordings are produced by a seeded simulator, one recording at a time, and the DataModule builds both splits from the
same config: `RigRecordings(cfg.n_train, seed=cfg.seed)` and `RigRecordings(cfg.n_val, seed=cfg.seed)`. With the
same seed the simulator replays the same stream, so the 250 validation recordings are exactly the first 250 training
recordings, noisy labels included.

Why training still "works": the loss falls and validation improves with it, reaching numbers that look like a
perfectly fitted model, while the network has in fact memorised the noisy training labels. Measured against the fixed
version (validation simulated with `seed=cfg.seed + 1`): val accuracy 1.000 with the bug vs 0.448 fixed (25% label
noise caps honest accuracy near 0.8), val loss 0.004 vs 2.64; train loss 0.005 in both."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout33"


@dataclass
class Config:
    seed: int = 33
    n_train: int = 800
    n_val: int = 250
    label_noise: float = 0.25
    batch_size: int = 32


class RigRecordings(Dataset):
    def __init__(self, n, seed, label_noise=0.25, steps=64):
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(steps, dtype=torch.float32)
        self.x, self.y = [], []
        for _ in range(n):
            fault = int(torch.randint(4, (1,), generator=g))
            x = 0.8 * torch.randn(3, steps, generator=g)
            if fault < 3:
                start = int(torch.randint(0, steps - 16, (1,), generator=g))
                x[fault, start:start + 16] += 1.2 * torch.sin(2.1 * t[:16])
            noisy = float(torch.rand(1, generator=g)) < label_noise
            label = int(torch.randint(4, (1,), generator=g)) if noisy else fault
            self.x.append(x)
            self.y.append(label)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class RigData(L.LightningDataModule):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def setup(self, stage=None):
        c = self.cfg
        self.train_ds = RigRecordings(c.n_train, seed=c.seed, label_noise=c.label_noise)
        self.val_ds = RigRecordings(c.n_val, seed=c.seed, label_noise=c.label_noise)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.cfg.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=125)


class FaultCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv1d(3, 64, 5, padding=2), nn.ReLU(), nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(),
            nn.MaxPool1d(2), nn.Flatten(), nn.Linear(64 * 32, 128), nn.ReLU(), nn.Linear(128, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch[1]),
                       "val_acc": (logits.argmax(-1) == batch[1]).float().mean()})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3309)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FaultCNN(), datamodule=RigData(Config()))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
