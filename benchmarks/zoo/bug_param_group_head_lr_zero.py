"""Bug: discriminative learning rates with the head's rate read from a config dict that lacks the key, with a
default of 0: `{"params": head, "lr": cfg.get("head_lr", 0.0)}`. The freshly initialised head is trainable and
gets gradients but never moves; only the backbone (lr 1e-3) adapts to the random head. Adam, MLP on digits."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule", "update-ratio"}
SPLIT = "heldout"
EPOCHS = 6


class DigitsNet(L.LightningModule):
    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.net = nn.Sequential(self.backbone, self.head)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        cfg = {"backbone_lr": 1e-3, "lr_head": 1e-2}  # typo in the key: "lr_head"
        return torch.optim.Adam([
            {"params": self.backbone.parameters(), "lr": cfg["backbone_lr"]},
            {"params": self.head.parameters(), "lr": cfg.get("head_lr", 0.0)},  # BUG: silently 0
        ])


def main():
    L.seed_everything(1613)
    d = load_digits()
    x = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=32, shuffle=True)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=[*lightning_sanity.default_callbacks()])
    trainer.fit(DigitsNet(len(train)), train, DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
