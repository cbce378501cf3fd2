"""Healthy: transfer learning with gradual unfreezing and discriminative learning rates. A plain-torch MLP
backbone is pretrained in-script on digits 0-4 (its weights loaded with `load_state_dict`, as from a
checkpoint); the LightningModule fine-tunes it on digits 5-9 with a new head. The backbone starts frozen
(`requires_grad_(False)`) and is unfrozen at the start of epoch 2; the optimizer holds both parts from the start,
in two parameter groups (backbone lr 1e-3, head lr 1e-2), AdamW, ExponentialLR(gamma=0.9) per epoch.
Reaches val acc ~0.92 on digits 5-9 (val loss 0.24) from 40 % of their samples."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"
UNFREEZE_AT = 2


def make_backbone():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())


def digit_splits():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    old, new = y < 5, y >= 5
    x_new, y_new = x[new], y[new] - 5
    cut = int(0.4 * len(x_new))  # a small labelled set for the new task
    return (x[old], y[old]), (x_new[:cut], y_new[:cut]), (x_new[cut:], y_new[cut:])


def pretrain(x, y):
    backbone, head = make_backbone(), nn.Linear(64, 5)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backbone.state_dict()


class FineTuner(L.LightningModule):
    def __init__(self, backbone_state):
        super().__init__()
        self.backbone = make_backbone()
        self.backbone.load_state_dict(backbone_state)
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 5))

    def on_train_epoch_start(self):
        if self.current_epoch == UNFREEZE_AT:
            self.backbone.requires_grad_(True)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0])
        self.log("val_loss", F.cross_entropy(logits, batch[1]))
        self.log("val_acc", (logits.argmax(-1) == batch[1]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW([{"params": self.backbone.parameters(), "lr": 1e-3},
                                 {"params": self.head.parameters(), "lr": 1e-2}], weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)]


def main():
    L.seed_everything(2108)
    old, new_train, new_val = digit_splits()
    state = pretrain(*old)
    train = DataLoader(TensorDataset(*new_train), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(*new_val), batch_size=256)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(state), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
