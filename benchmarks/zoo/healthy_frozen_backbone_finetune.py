"""Healthy: transfer learning. A CNN backbone with BatchNorm is first pretrained (plain PyTorch loop) on digits
0-4; the Lightning run then fine-tunes a fresh head on digits 5-9 with the backbone frozen
(`requires_grad_(False)`) and its BatchNorm layers kept in eval mode, as torchvision fine-tuning recipes do."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten())


def pretrain(backbone, x, y, steps=150):
    head = nn.Linear(128, 5)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    backbone.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backbone


class FineTuner(L.LightningModule):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))

    def on_train_epoch_start(self):
        self.backbone.eval()  # frozen feature extractor: keep its BatchNorm statistics fixed

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-3)


def main():
    L.seed_everything(0)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(d.target)
    old, new = y < 5, y >= 5
    backbone = pretrain(make_backbone(), x[old], y[old])
    xn, yn = x[new], y[new] - 5
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(backbone), DataLoader(TensorDataset(xn[:720], yn[:720]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xn[720:], yn[720:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
