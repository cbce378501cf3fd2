"""Bug: a two-input digits classifier (8x8 image through a small CNN + 16 standardised stroke-profile features
through an MLP), intermediate fusion: both embeddings are concatenated and go through a fusion MLP before the
classifier. `configure_optimizers` builds parameter groups by hand so the image encoder gets a smaller learning rate
than the rest: image encoder, tabular encoder, classifier... and the fusion MLP (`self.fusion`, added in a later
refactor) is in none of the groups. Its weights stay at their random initialisation for the whole run. Training
still "works": the classifier and both encoders adapt around a fixed random projection, so the loss falls and the
accuracy is decent. Measured (12 epochs): val acc 0.919 (val loss 0.310) with the bug vs 0.953 (0.134) with
`self.fusion` added to the last group."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout28"


def profile_features(images):
    return np.concatenate([images.sum(axis=2), images.sum(axis=1)], axis=1)


def collate(records):
    return {
        "image": torch.stack([torch.tensor(r[0], dtype=torch.float32) for r in records]).unsqueeze(1),
        "tab": torch.stack([torch.tensor(r[1], dtype=torch.float32) for r in records]),
        "labels": torch.tensor([r[2] for r in records]),
    }


class FusionNet(L.LightningModule):
    def __init__(self, lr=3e-3, image_lr_mult=0.3):
        super().__init__()
        self.save_hyperparameters()
        self.image_enc = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.tab_enc = nn.Sequential(nn.Linear(16, 64), nn.ReLU())
        self.fusion = nn.Sequential(nn.Linear(128 + 64, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU())
        self.classifier = nn.Linear(64, 10)

    def forward(self, batch):
        h = torch.cat([self.image_enc(batch["image"]), self.tab_enc(batch["tab"])], dim=1)
        return self.classifier(self.fusion(h))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch), batch["labels"])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        y = batch["labels"]
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        lr = self.hparams.lr
        return torch.optim.Adam([
            {"params": self.image_enc.parameters(), "lr": lr * self.hparams.image_lr_mult},
            {"params": self.tab_enc.parameters()},
            {"params": self.classifier.parameters()},
        ], lr=lr)


def main():
    L.seed_everything(281)
    digits = load_digits()
    images, y = digits.images, digits.target
    idx_tr, idx_va = train_test_split(np.arange(len(y)), test_size=0.2, random_state=1, stratify=y)
    scaler = StandardScaler().fit(profile_features(images[idx_tr]))
    tab = scaler.transform(profile_features(images))
    records = [(images[i] / 16.0, tab[i], int(y[i])) for i in range(len(y))]
    train_dl = DataLoader([records[i] for i in idx_tr], batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader([records[i] for i in idx_va], batch_size=128, collate_fn=collate)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FusionNet(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
