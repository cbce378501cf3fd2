"""Bug: slice-level tumour classification on synthetic MRI volumes (60 patients x 10 slices of 16x16; a faint
lesion spans a few contiguous slices in half of the patients, the label is per slice). The author correctly
draws 12 *patient ids* for validation and builds the validation mask with `np.isin(patient_of_row, val_ids)`,
but builds the training mask as `~np.isin(np.arange(n_rows), val_ids)`, i.e. against the *row index* instead
of the patient id. Only the 12 rows whose index happens to equal a validation patient id are dropped from
training; every other slice of the validation patients (108 of 120) is also a training sample. Training runs
normally and the loss falls; validation just looks too good because the net is scored on slices it has fitted.
Measured (same seed, 25 epochs): val acc 0.992 / val loss 0.021 with the bug (588 training rows), vs 0.892 / 0.453
with `train_mask = ~val_mask` (480 training rows)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout28"

N_PATIENTS, N_SLICES, SIDE = 60, 10, 16


def make_volumes(seed=5):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(), indexing="ij")
    images, labels, patient = [], [], []
    for p in range(N_PATIENTS):
        r = 5 + 2 * torch.rand(1, generator=g)
        brain = torch.sigmoid(2 * (r - ((yy - 7.5) ** 2 + (xx - 7.5) ** 2).sqrt()))
        vol = brain.expand(N_SLICES, SIDE, SIDE) + 0.45 * torch.randn(N_SLICES, SIDE, SIDE, generator=g)
        lab = torch.zeros(N_SLICES)
        if torch.rand(1, generator=g) < 0.5:
            s0 = int(torch.randint(1, N_SLICES - 4, (1,), generator=g))
            cy, cx = (int(v) for v in torch.randint(5, 11, (2,), generator=g))
            blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0)
            vol[s0:s0 + 4] += 0.9 * blob
            lab[s0:s0 + 4] = 1
        images.append(vol)
        labels.append(lab)
        patient += [p] * N_SLICES
    return torch.cat(images).unsqueeze(1), torch.cat(labels), np.array(patient)


class SliceCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(8)
    images, labels, patient_of_row = make_volumes()
    val_ids = np.random.default_rng(0).choice(N_PATIENTS, 12, replace=False)
    val_mask = np.isin(patient_of_row, val_ids)
    train_mask = ~np.isin(np.arange(len(patient_of_row)), val_ids)
    tr, va = torch.from_numpy(np.flatnonzero(train_mask)), torch.from_numpy(np.flatnonzero(val_mask))
    train = DataLoader(TensorDataset(images[tr], labels[tr]), batch_size=32, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(images[va], labels[va]), batch_size=128)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SliceCNN(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} train_rows={len(tr)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
