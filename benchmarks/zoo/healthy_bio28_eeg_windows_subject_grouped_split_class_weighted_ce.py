"""Healthy: spike-wave detection in synthetic two-channel EEG windows (1 s at 128 Hz). Each subject contributes 30
windows with a subject-specific background alpha rhythm (frequency, amplitude, phase); about 20% of the windows
carry a train of three sharp spikes, which is the label. Several windows per subject, so the split is done with
`GroupShuffleSplit` on subject ids (no subject on both sides). The classes are imbalanced, so the cross-entropy
uses class weights computed from the *training* labels only (n / (2 * count_c)). Small Conv1d + BatchNorm net,
AdamW with a per-epoch cosine schedule. Correct because the grouping, the weights and the schedule all follow
the data that training may see. Own metric: val balanced accuracy 1.00, val loss 0.008."""

import lightning as L
import math
import torch
import torch.nn.functional as F
from sklearn.model_selection import GroupShuffleSplit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout28"

FS = 128


def make_eeg(n_subjects=40, per_subject=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = n_subjects * per_subject
    subject = torch.arange(n_subjects).repeat_interleave(per_subject)
    freq = 8 + 5 * torch.rand(n_subjects, generator=g)
    amp = 0.5 + torch.rand(n_subjects, generator=g)
    t = torch.arange(FS) / FS
    phase = 2 * math.pi * torch.rand(n, 2, 1, generator=g)
    alpha = amp[subject, None, None] * torch.sin(2 * math.pi * freq[subject, None, None] * t + phase)
    x = alpha + 0.4 * torch.randn(n, 2, FS, generator=g)
    y = (torch.rand(n, generator=g) < 0.2).long()
    start = torch.randint(5, FS - 75, (n,), generator=g)
    idx = torch.arange(FS).float()
    spikes = sum(torch.exp(-((idx - (start[:, None] + 32 * k)) ** 2) / 3.0) for k in range(3))
    x = x + 2.5 * (y[:, None, None] * spikes[:, None, :]) * torch.tensor([1.0, 0.7])[None, :, None]
    return x, y, subject


class EEGDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x, y, subject = make_eeg()
        tr, va = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0).split(x, y, groups=subject))
        tr, va = torch.as_tensor(tr), torch.as_tensor(va)
        counts = torch.bincount(y[tr], minlength=2).float()
        self.class_weights = len(tr) / (2 * counts)
        self.train_ds = TensorDataset(x[tr], y[tr])
        self.val_ds = TensorDataset(x[va], y[va])

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class SpikeNet(L.LightningModule):
    def __init__(self, lr=3e-3, max_epochs=8):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv1d(2, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 2))
        self.val_preds = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        weight = self.trainer.datamodule.class_weights.to(x.device)
        loss = F.cross_entropy(self(x), y, weight=weight)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.val_preds.append((logits.argmax(1), y))

    def on_validation_epoch_end(self):
        pred = torch.cat([p for p, _ in self.val_preds])
        y = torch.cat([t for _, t in self.val_preds])
        self.val_preds.clear()
        recalls = [((pred == c) & (y == c)).sum() / (y == c).sum().clamp(min=1) for c in (0, 1)]
        self.log("val_bal_acc", torch.stack(recalls).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(28)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SpikeNet(max_epochs=8), datamodule=EEGDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_bal_acc={m['val_bal_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
