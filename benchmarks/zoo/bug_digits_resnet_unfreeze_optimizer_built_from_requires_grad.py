"""Bug: transfer learning in one script. A small ResNet-style backbone (conv stem + two residual blocks with
BatchNorm) is first pretrained on a synthetic pretext task (orientation of noisy 8x8 gratings), then fine-tuned on
sklearn digits with a new linear head: the backbone is frozen for the first epochs and unfrozen at epoch 3 (the
gradual-unfreezing recipe). `configure_optimizers` builds Adam from
`filter(lambda p: p.requires_grad, self.parameters())`, the idiom every "freeze the backbone" answer shows. That
filter runs once, while the backbone is still frozen, so when `on_train_epoch_start` flips `requires_grad` back on
the backbone gets gradients that no optimizer ever applies: fine-tuning is a linear probe on grating features.
Why a user writes it: the filter is the standard way to avoid "optimizer got a parameter that doesn't require
grad" errors, and unfreezing by `requires_grad_(True)` looks complete.
Symptom: val acc 0.43 vs 0.96 when the backbone joins the optimizer (its own param group, lr 3e-4) on unfreeze."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout12"


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class Backbone(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = ResBlock(width, width, 1)
        self.layer2 = ResBlock(width, 2 * width, 2)
        self.out_dim = 2 * width

    def forward(self, x):
        return self.layer2(self.layer1(self.stem(x))).mean(dim=(2, 3))


def gratings(n, seed):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 4, (n,), generator=g)
    angle = label.float() * torch.pi / 4 + 0.15 * torch.randn(n, generator=g)
    freq = 1.2 + 0.6 * torch.rand(n, generator=g)
    phase = 6.28 * torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    proj = torch.cos(angle)[:, None, None] * xx + torch.sin(angle)[:, None, None] * yy
    img = torch.sin(freq[:, None, None] * proj + phase[:, None, None]) + 0.4 * torch.randn(n, 8, 8, generator=g)
    return img.unsqueeze(1), label


class Pretext(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.head = nn.Linear(self.backbone.out_dim, 4)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.head(self.backbone(x)), y)
        self.log("pretext_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


class FineTuner(L.LightningModule):
    def __init__(self, backbone, unfreeze_at=3, lr=1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, 10)
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))

    def on_train_epoch_start(self):
        if self.current_epoch == self.hparams.unfreeze_at:
            for p in self.backbone.parameters():
                p.requires_grad_(True)

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
        return torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=self.hparams.lr)


def main():
    L.seed_everything(12)
    xg, yg = gratings(3000, seed=1)
    pre = Pretext()
    L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        pre, DataLoader(TensorDataset(xg, yg), batch_size=64, shuffle=True))

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    X = (X - 0.3) / 0.4
    y = torch.tensor(y)
    idx_tr, idx_va = train_test_split(torch.arange(len(y)), test_size=0.25, stratify=y, random_state=0)
    train_dl = DataLoader(TensorDataset(X[idx_tr], y[idx_tr]), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(X[idx_va], y[idx_va]), batch_size=256)

    model = FineTuner(pre.backbone)
    trainer = L.Trainer(
        max_epochs=14,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="digits_unfreeze"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dl, val_dl)
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
