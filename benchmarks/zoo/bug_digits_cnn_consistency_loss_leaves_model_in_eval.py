"""Bug: a small BatchNorm + dropout CNN on 8x8 digits trained on only 400 labelled images with augmentation (random
1-pixel shifts and pixel noise) and a consistency term: the KL divergence between the prediction on the augmented
view and a "clean" target prediction on the un-augmented image. To get a deterministic clean target the user
writes `self.eval()` + `torch.no_grad()` inside `training_step`, but never calls `self.train()` afterwards. Only
the first batch of each epoch (Lightning puts the module back in train mode after validation) runs in training
mode; every other step trains with dropout off and BatchNorm normalising with its stale running statistics, which
are then hardly ever updated. Symptom: val acc 0.850 (val loss 0.58) vs 0.927 (val loss 0.28) with `self.train()`
restored after the clean forward."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout13"


def augment(x):
    """Random shift by up to one pixel in each direction, plus a little pixel noise."""
    dx, dy = np.random.randint(-1, 2, size=2)
    x = torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
    return (x + 0.05 * torch.randn_like(x)).clamp(0, 1)


class ConsistencyCNN(L.LightningModule):
    def __init__(self, lr=2e-3, consistency=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(64, 10))
        self.summary = {}

    def forward(self, x):
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(augment(x))
        self.eval()
        with torch.no_grad():
            clean_target = F.softmax(self(x), dim=1)
        consistency = F.kl_div(F.log_softmax(logits, dim=1), clean_target, reduction="batchmean")
        ce = F.cross_entropy(logits, y)
        loss = ce + self.hparams.consistency * consistency
        self.log_dict({"train_ce": ce, "train_consistency": consistency})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self):
        m = self.trainer.callback_metrics
        self.summary = {"val_loss": float(m["val_loss"]), "val_acc": float(m["val_acc"])}

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)}


def main():
    L.seed_everything(808)
    d = load_digits()
    X = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target).long()
    idx_train, idx_val = train_test_split(np.arange(len(y)), train_size=400, random_state=0, stratify=d.target)
    train_loader = DataLoader(TensorDataset(X[idx_train], y[idx_train]), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(X[idx_val], y[idx_val]), batch_size=512)
    model = ConsistencyCNN()
    trainer = L.Trainer(
        max_epochs=30,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="digits_consistency_cnn"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    print(f"SYMPTOM val_loss={model.summary['val_loss']:.3f} val_acc={model.summary['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
