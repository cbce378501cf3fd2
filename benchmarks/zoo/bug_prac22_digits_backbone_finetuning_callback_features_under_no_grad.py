"""Bug: transfer between digit tasks. A small CNN backbone is first pretrained (plain PyTorch loop, in this script)
to classify digits 0-4; then a LightningModule puts a new head on it for digits 5-9 with only 150 labelled images,
and Lightning's BackboneFinetuning callback keeps the backbone frozen for 4 epochs and then unfreezes it at a tenth
of the head's learning rate (the optimizer is built from the trainable parameters only, as the callback requires).
Validation on 5-9 images with torchmetrics accuracy; gradient clipping at 1.0.

`forward` computes the features under `torch.no_grad()` ("the backbone is frozen, no need to build its graph"),
which was true for the first epochs. When the callback unfreezes the backbone at epoch 4 it sets requires_grad and
adds the backbone's parameter group to the optimizer, but the features are still computed without autograd, so the
backbone never receives a gradient and the run is silently a linear-probe-plus-MLP-head run. The loss keeps
falling and the optimizer shows the backbone group with a learning rate. Symptom: val accuracy 0.680 (val loss
0.814) vs 0.973 (0.091) when the features are computed with autograd after the unfreeze."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BackboneFinetuning
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout22"


def make_backbone():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def pretrain(backbone, x, y, epochs=4):
    head = nn.Linear(32, 5)
    opt = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=3e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    backbone.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(head(backbone(xb)), yb).backward()
            opt.step()
    return backbone


class DigitTransfer(L.LightningModule):
    def __init__(self, backbone, lr=3e-3):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 5))
        self.lr = lr
        self.val_acc = MulticlassAccuracy(5, average="micro")

    def forward(self, x):
        with torch.no_grad():
            feats = self.backbone(x)
        return self.head(feats)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)

    def configure_optimizers(self):
        return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=self.lr)


def main():
    L.seed_everything(2204)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    low, high = y < 5, y >= 5
    backbone = pretrain(make_backbone(), x[low], y[low])
    xh, yh = x[high], y[high] - 5
    perm = torch.randperm(len(xh), generator=torch.Generator().manual_seed(0))
    train, val = perm[:150], perm[150:]
    model = DigitTransfer(backbone)
    finetune = BackboneFinetuning(unfreeze_backbone_at_epoch=4, backbone_initial_ratio_lr=0.1)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=[finetune] + lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(xh[train], yh[train]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(xh[val], yh[val]), batch_size=256))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
