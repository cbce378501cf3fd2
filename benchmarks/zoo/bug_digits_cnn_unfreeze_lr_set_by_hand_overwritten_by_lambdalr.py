"""Bug: fine-tuning a small CNN backbone (pretrained in this script on digits 0-4, saved with `torch.save` and
reloaded with `load_state_dict`, the way a checkpoint from another run is used) on all ten digits, with two
parameter groups and a HuggingFace-style linear warm-up/linear decay `LambdaLR` stepped every batch. The
backbone is "frozen" for the first two epochs by giving its group `lr=0.0`, and `on_train_epoch_start` unfreezes
it at epoch 2 with `param_group["lr"] = 3e-4`. But LambdaLR computes every lr as `base_lr * lambda(step)` from
the `initial_lr` it recorded when it was built - 0.0 for the backbone - so the scheduler's next step writes 0.0
back over the hand-set value. The backbone trains with lr 0 for the whole run (its gradients are computed and
thrown away) and only the head adapts to the five digit classes the backbone never saw.

Symptom (measured): val acc 0.769 (val loss 0.84) vs 0.976 (val loss 0.32) when the backbone group is built with
its real lr and held at zero through the lambda (`lambda s: 0.0 if s < unfreeze_step else ...`). Runtime ~7 s."""

import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout13"


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def pretrain_backbone(x, y, path):
    """Stand-in for the upstream run: a backbone + 5-way head trained on digits 0-4, backbone weights saved."""
    keep = y < 5
    x, y = x[keep], y[keep]
    backbone, head = make_backbone(), nn.Linear(64, 5)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(backbone.state_dict(), path)


class DigitsFinetune(L.LightningModule):
    def __init__(self, backbone_path, head_lr=2e-3, backbone_lr=3e-4, unfreeze_epoch=2, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = make_backbone()
        self.backbone.load_state_dict(torch.load(backbone_path))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.backbone(x))

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

    def on_train_epoch_start(self):
        if self.current_epoch == self.hparams.unfreeze_epoch:
            opt = self.optimizers().optimizer
            opt.param_groups[0]["lr"] = self.hparams.backbone_lr  # unfreeze the backbone

    def configure_optimizers(self):
        opt = torch.optim.AdamW([
            {"params": self.backbone.parameters(), "lr": 0.0},  # frozen until unfreeze_epoch
            {"params": self.head.parameters(), "lr": self.hparams.head_lr},
        ], weight_decay=1e-4)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps

        def linear_warmup_decay(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(555)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    idx_tr, idx_va = train_test_split(range(len(y)), test_size=0.25, random_state=0, stratify=digits.target)
    x_tr, y_tr, x_va, y_va = x[idx_tr], y[idx_tr], x[idx_va], y[idx_va]
    path = os.path.join(tempfile.mkdtemp(), "backbone_digits04.pt")
    pretrain_backbone(x_tr, y_tr, path)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=256)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsFinetune(path), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
