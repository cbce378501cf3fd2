"""Healthy: self-supervised pretraining of a BatchNorm CNN encoder on the 8x8 scikit-learn digits with the
rotation-prediction pretext (each image is shown at 0, 90, 180 and 270 degrees and a 4-way head predicts which),
with an online linear probe as in the SimCLR/BYOL Lightning recipes: a linear classifier on the encoder's features
of the upright view, trained at the same time on `features.detach()` with the digit labels, so the labels never
shape the encoder and the probe's accuracy tracks representation quality. One AdamW optimiser over encoder, pretext
head and probe (the probe's gradient stops at the detach, the pretext loss does not reach the probe), warm-up then
cosine per step.

Right: the detach is deliberate and the probe still gets its own gradient; the four rotated copies of a batch are
stacked in one forward pass and the rotation labels are built in the same order (`repeat_interleave`); validation
reports probe accuracy on held-out images. The probe reads the flattened 32x4x4 feature map (512 features).
Result: val probe accuracy 0.970 and val rotation accuracy 0.962; the same probe on an encoder that is never
trained (pretext loss weighted by zero) reaches 0.960: the 8x8 digits are nearly linearly separable anyway."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"


def four_rotations(x):
    views = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return views, labels


class RotationPretext(L.LightningModule):
    def __init__(self, lr=3e-3, warmup_frac=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten())
        self.rotation_head = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 4))
        self.probe = nn.Linear(512, 10)

    def forward(self, x):
        return self.probe(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        views, rot = four_rotations(x)
        feats = self.encoder(views)
        rot_loss = F.cross_entropy(self.rotation_head(feats), rot)
        probe_loss = F.cross_entropy(self.probe(feats[:x.shape[0]].detach()), y)
        self.log_dict({"train_rot_loss": rot_loss, "train_probe_loss": probe_loss}, on_epoch=True)
        return rot_loss + probe_loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        views, rot = four_rotations(x)
        feats = self.encoder(views)
        probe_logits = self.probe(feats[:x.shape[0]])
        self.log("val_loss", F.cross_entropy(probe_logits, y))
        self.log("val_probe_acc", (probe_logits.argmax(1) == y).float().mean())
        self.log("val_rot_acc", (self.rotation_head(feats).argmax(1) == rot).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        total = self.trainer.estimated_stepping_batches
        warm = max(1, int(self.hparams.warmup_frac * total))

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}]


def main():
    L.seed_everything(2112)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    model = RotationPretext()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_probe_acc={float(m['val_probe_acc']):.3f} val_rot_acc={float(m['val_rot_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
