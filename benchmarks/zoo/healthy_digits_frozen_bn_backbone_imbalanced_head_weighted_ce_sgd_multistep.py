"""Healthy: a frozen pretrained CNN backbone with a new classifier head on a long-tailed fine-tuning set. The
backbone (conv + BatchNorm) is trained in this script on a separate pool of digits images, saved with
`torch.save` and reloaded; the fine-tuning run freezes it (`requires_grad_(False)`) and keeps it in eval mode on
purpose by overriding `train()`, so its BatchNorm layers keep the pretraining statistics instead of re-estimating
them from small, skewed batches. The fine-tuning split is long-tailed (digits 5-9 kept at 12 %), handled with
class-balanced weights in the cross-entropy; validation is balanced. The head is a two-layer MLP with dropout,
trained with SGD + momentum + Nesterov and MultiStepLR. Train counts per class [74 77 68 75 84 11 8 6 10 5];
final val acc 0.988 (val loss 0.05) on the balanced val set, ~6 s."""

import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 48, 3, padding=1, bias=False), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(48, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),   # 256 features
    )


def pretrain(x, y, path):
    backbone, head = make_backbone(), nn.Linear(256, 10)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=2e-3)
    g = torch.Generator().manual_seed(3)
    for _ in range(6):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(backbone.state_dict(), path)


class FrozenBackboneClassifier(L.LightningModule):
    def __init__(self, backbone_path, class_weights, lr=0.05):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.backbone = make_backbone()
        self.backbone.load_state_dict(torch.load(backbone_path))
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
        self.register_buffer("class_weights", class_weights)

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()   # frozen: keep the pretrained BatchNorm statistics
        return self

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.head.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[8, 12], gamma=0.2)]


if __name__ == "__main__":
    L.seed_everything(1701)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    pool, ft, va = perm[:700], perm[700:1450], perm[1450:]
    path = os.path.join(tempfile.mkdtemp(), "digits_backbone.pt")
    pretrain(x[pool], y[pool], path)
    g = torch.Generator().manual_seed(1)
    keep = (y[ft] < 5) | (torch.rand(len(ft), generator=g) < 0.12)   # long tail: digits 5-9 mostly dropped
    ft = ft[keep]
    counts = torch.bincount(y[ft], minlength=10).float()
    class_weights = counts.sum() / (10 * counts)
    train = DataLoader(TensorDataset(x[ft], y[ft]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[va], y[va]), batch_size=256)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FrozenBackboneClassifier(path, class_weights), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM train_counts={counts.long().tolist()} val_acc={float(m['val_acc']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
