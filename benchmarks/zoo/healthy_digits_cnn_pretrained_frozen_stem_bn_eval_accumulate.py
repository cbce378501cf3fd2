"""Healthy: transfer learning on the 8x8 digits. A conv backbone is pretrained in plain PyTorch on digits 0-4 and its
`state_dict` saved; the Lightning module loads it to classify digits 5-9. The stem (first conv + BatchNorm) is
frozen with `requires_grad_(False)` and kept in eval mode on purpose (an overridden `train()`), so its pretrained
running statistics are not updated; the rest of the backbone and a new head train in two parameter groups (backbone
lr 3e-4, head lr 3e-3), with gradient clipping and `accumulate_grad_batches=2` over small batches of 16. Final val
acc 0.98 (val loss 0.07)."""

import io

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.body = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )

    def forward(self, x):
        return self.body(self.stem(x))


def pretrain(x, y, epochs=6):
    backbone, head = Backbone(), nn.Linear(64, 5)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=2e-3)
    for _ in range(epochs):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(head(backbone(xb)), yb).backward()
            opt.step()
    buf = io.BytesIO()
    torch.save(backbone.state_dict(), buf)
    buf.seek(0)
    return buf


class FrozenStemFineTuner(L.LightningModule):
    def __init__(self, checkpoint, backbone_lr=3e-4, head_lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["checkpoint"])
        self.backbone = Backbone()
        self.backbone.load_state_dict(torch.load(checkpoint))
        self.backbone.stem.requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(64, 5))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.stem.eval()          # frozen stem: keep its pretrained BatchNorm statistics
        return self

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW([
            {"params": self.backbone.body.parameters(), "lr": self.hparams.backbone_lr},
            {"params": self.head.parameters(), "lr": self.hparams.head_lr},
        ], weight_decay=1e-4)


def main():
    L.seed_everything(999)
    digits = load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(digits.target)
    upstream = y < 5
    checkpoint = pretrain(x[upstream], y[upstream])
    ds = TensorDataset(x[~upstream], y[~upstream] - 5)
    n_val = len(ds) // 4
    train_ds, val_ds = random_split(ds, [len(ds) - n_val, n_val], generator=torch.Generator().manual_seed(1))
    model = FrozenStemFineTuner(checkpoint)
    trainer = L.Trainer(
        max_epochs=8,
        accumulate_grad_batches=2,
        gradient_clip_val=0.5,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="frozen_stem_finetune"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=16, shuffle=True), DataLoader(val_ds, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val/acc']):.3f} val_loss={float(m['val/loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
