"""Healthy: CNN transfer learning on the scikit-learn 8x8 digits. Stage 1 pretrains a small conv backbone (two
conv-BN-ReLU blocks, global average pooling) with a 5-way head on the digits 0-4. Stage 2 fine-tunes on the digits
5-9 with only 30 labelled images per class: the backbone's first block is frozen and kept in eval mode on purpose
(its BatchNorm statistics stay those of pretraining, re-applied in `on_train_epoch_start` because Lightning puts the
module back in train mode), the second block trains at a 10x smaller lr than the new head (two parameter groups),
AdamW with cosine decay and label smoothing 0.1. Final fine-tune val acc on held-out 5-9 images 0.90."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"


def backbone():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
        nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Pretrain(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = backbone()
        self.head = nn.Linear(64, 5)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.head(self.backbone(x)), y)
        self.log("pre_train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


class FineTune(L.LightningModule):
    def __init__(self, pretrained_backbone):
        super().__init__()
        self.backbone = pretrained_backbone
        for p in self.backbone[0].parameters():
            p.requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 5))

    def on_train_epoch_start(self):
        self.backbone[0].eval()  # frozen block keeps its pretraining BatchNorm statistics

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(-1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW([
            {"params": self.backbone[1].parameters(), "lr": 3e-4},
            {"params": self.head.parameters(), "lr": 3e-3},
        ], weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(31)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    low, high = y < 5, y >= 5
    trainer_kw = dict(accelerator="cpu", devices=1, enable_progress_bar=False, enable_checkpointing=False,
                      callbacks=lightning_sanity.default_callbacks())
    pre = Pretrain()
    L.Trainer(max_epochs=6, logger=False, **trainer_kw).fit(
        pre, DataLoader(TensorDataset(x[low], y[low]), batch_size=64, shuffle=True))
    xh, yh = x[high], y[high] - 5
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(xh), generator=g)
    few = torch.cat([perm[(yh[perm] == c)][:30] for c in range(5)])
    rest = perm[~torch.isin(perm, few)]
    model = FineTune(pre.backbone)
    trainer = L.Trainer(max_epochs=20, logger=TensorBoardLogger("lightning_logs", name="digits_cnn_finetune"),
                        **trainer_kw)
    trainer.fit(model, DataLoader(TensorDataset(xh[few], yh[few]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(xh[rest], yh[rest]), batch_size=256))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
