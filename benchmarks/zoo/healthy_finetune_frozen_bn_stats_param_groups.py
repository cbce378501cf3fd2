"""Healthy: fine-tuning with frozen BatchNorm statistics. A small CNN backbone (conv-BN-ReLU x3) is first pretrained
in plain PyTorch on sklearn's digits 0-4 (its running statistics are the data's); the Lightning module then fine-tunes
it with a new head on digits 5-9. The backbone's BatchNorm layers are kept in eval mode by a `train()` override (their
affine weights still train), two parameter groups (backbone lr 3e-4, head 3e-3), AdamW and ExponentialLR per epoch.
Reaches val acc ~0.94 on digits 5-9."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"


def make_backbone():
    layers = []
    for cin, cout, stride in [(1, 16, 1), (16, 32, 2), (32, 32, 1)]:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def pretrain(backbone, x, y, epochs=3):
    """A plain-PyTorch pretraining run on the source task (as a checkpoint would arrive)."""
    head = nn.Linear(32, 5)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    backbone.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return backbone


class FineTuner(L.LightningModule):
    def __init__(self, backbone, n_classes=5):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(32, n_classes)

    def train(self, mode=True):
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()  # keep the pretrained running statistics
        return self

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

    def configure_optimizers(self):
        opt = torch.optim.AdamW([{"params": self.backbone.parameters(), "lr": 3e-4},
                                 {"params": self.head.parameters(), "lr": 3e-3}], weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)]


def main():
    L.seed_everything(37)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.45
    y = torch.tensor(d.target)
    source, target = y < 5, y >= 5
    backbone = pretrain(make_backbone(), x[source], y[source])
    xt, yt = x[target], y[target] - 5
    perm = torch.randperm(len(xt), generator=torch.Generator().manual_seed(37))
    train_idx, val_idx = perm[:600], perm[600:]
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(backbone), DataLoader(TensorDataset(xt[train_idx], yt[train_idx]), batch_size=32,
                                                shuffle=True),
                DataLoader(TensorDataset(xt[val_idx], yt[val_idx]), batch_size=128))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
