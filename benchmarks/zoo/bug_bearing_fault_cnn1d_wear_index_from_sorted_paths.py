"""Bearing fault classifier: a 1-D CNN on vibration snippets (4 classes: healthy, inner-race, outer-race and ball
fault, each a train of impacts at its own characteristic defect frequency under shaft hum and heavy noise), plus
a standardised scalar "wear" covariate fed to the head: bearings degrade over the test campaign, so the user
gives the model how far into the campaign each recording was made.

Bug: the recordings come as paths `"<fault>/<yyyymmdd>_<run>.npy"`, and the wear covariate is computed as
`rank / n` after `paths = sorted(paths)`, meant to put the recordings in date order. Sorting the full path sorts by
the fault folder first, so "wear" is a block code of the label (healthy 0-0.25, ball 0.25-0.5, ...). A random
train/val split keeps the code valid on validation, so the val score looks excellent and the model barely needs
the vibration at all. Measured symptom: val acc 0.96 vs 0.57 with the fix (sorting by the file name, i.e. by date).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout11"
FAULTS = ["ball", "healthy", "inner", "outer"]
DEFECT_HZ = {"ball": 0.055, "healthy": 0.0, "inner": 0.085, "outer": 0.035}   # impacts per sample
N = 256


def record_campaign(n, seed):
    """What the acquisition PC exported: (path, snippet) pairs, listed in acquisition order."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(N).float()
    out = []
    for i in range(n):
        fault = FAULTS[int(torch.randint(0, 4, (1,), generator=g))]
        day = 20240101 + int(i * 300 / n)
        hum = 0.5 * torch.sin(2 * torch.pi * 0.012 * t + float(torch.rand(1, generator=g)) * 6.28)
        sig = hum + 0.4 * torch.randn(N, generator=g)
        rate = DEFECT_HZ[fault] * (1 + 0.05 * float(torch.randn(1, generator=g)))
        if rate > 0:
            phase = float(torch.rand(1, generator=g))
            hits = torch.frac(t * rate + phase) < rate          # one sample per defect period
            ring = torch.exp(-torch.arange(8).float() / 2.0) * torch.cos(torch.arange(8).float() * 2.2)
            impulses = F.conv1d(hits.float().view(1, 1, -1), ring.flip(0).view(1, 1, -1), padding=7)[0, 0, :N]
            sig = sig + (0.8 + 0.6 * float(torch.rand(1, generator=g))) * impulses
        out.append((f"{fault}/{day}_{i:04d}.npy", sig))
    return out


def build_dataset(records):
    records = sorted(records, key=lambda r: r[0])            # date order, so rank == campaign progress
    n = len(records)
    x = torch.stack([sig for _, sig in records]).unsqueeze(1)
    wear = torch.tensor([rank / n for rank in range(n)]).unsqueeze(1)
    y = torch.tensor([FAULTS.index(p.split("/")[0]) for p, _ in records])
    return x, wear, y


class FaultNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Sequential(
            nn.Conv1d(1, 16, 9, padding=4), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 9, padding=4), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 32, 9, padding=4), nn.BatchNorm1d(32), nn.ReLU(), nn.AdaptiveAvgPool1d(1))
        self.head = nn.Sequential(nn.Linear(32 + 1, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x, wear):
        return self.head(torch.cat([self.conv(x).flatten(1), wear], dim=1))

    def training_step(self, batch, batch_idx):
        x, wear, y = batch
        loss = F.cross_entropy(self(x, wear), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, wear, y = batch
        logits = self(x, wear)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(4242)
    x, wear, y = build_dataset(record_campaign(1200, seed=3))
    x = x / x.std()
    wear = (wear - wear.mean()) / wear.std()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:960], perm[960:]
    model = FaultNet()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="bearing"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], wear[tr], y[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[va], wear[va], y[va]), batch_size=128))
    model.eval()
    with torch.no_grad():
        acc = (model(x[va], wear[va]).argmax(1) == y[va]).float().mean()
    print(f"SYMPTOM val_acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
