"""Healthy: transfer learning from a saved checkpoint. A small CNN backbone (conv-BN-ReLU stem, two conv blocks) is
first pre-trained in a plain PyTorch loop on digits 0-4 and its `state_dict` saved to disk; the Lightning module
loads it (`load_state_dict(strict=True)`), freezes the stem (requires_grad False, and its BatchNorm kept in eval
mode in `on_train_epoch_start` so its pretrained statistics stay put), and fine-tunes the rest on digits 5-9 with a
new head. Discriminative learning rates (AdamW: block1 1e-4, block2 3e-4, head 3e-3; frozen stem not given to the
optimizer), StepLR per epoch, Lightning's `StochasticWeightAveraging(swa_epoch_start=0.7)`, and a
LightningDataModule that builds the two tasks. Own metric: val acc on digits 5-9 0.97."""""

import os

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.block1 = nn.Sequential(conv_bn(16, 32, 2), conv_bn(32, 32))
        self.block2 = nn.Sequential(conv_bn(32, 64, 2), conv_bn(64, 64))
        self.out_dim = 64

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.block2(self.block1(self.stem(x))), 1).flatten(1)


class DigitsTransfer(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        d = load_digits()
        x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
        x, y = (x - 0.31) / 0.38, torch.tensor(d.target)
        self.source = TensorDataset(x[y < 5], y[y < 5])
        xt, yt = x[y >= 5], y[y >= 5] - 5
        i_tr, i_va = train_test_split(torch.arange(len(yt)), test_size=0.3, random_state=2, stratify=yt)
        self.train_ds, self.val_ds = TensorDataset(xt[i_tr], yt[i_tr]), TensorDataset(xt[i_va], yt[i_va])

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=300)


def pretrain_backbone(source, path, epochs=3):
    backbone, head = Backbone(), nn.Linear(64, 5)
    opt = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=2e-3)
    loader = DataLoader(source, batch_size=64, shuffle=True)
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(head(backbone(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(backbone.state_dict(), path)


class LitFineTune(L.LightningModule):
    def __init__(self, ckpt_path):
        super().__init__()
        self.backbone = Backbone()
        self.backbone.load_state_dict(torch.load(ckpt_path, weights_only=True), strict=True)
        self.backbone.stem.requires_grad_(False)
        self.head = nn.Linear(self.backbone.out_dim, 5)

    def forward(self, x):
        return self.head(self.backbone(x))

    def on_train_epoch_start(self):
        self.backbone.stem.eval()  # frozen stem: keep its pretrained BatchNorm statistics

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
        opt = torch.optim.AdamW([{"params": self.backbone.block1.parameters(), "lr": 1e-4},
                                 {"params": self.backbone.block2.parameters(), "lr": 3e-4},
                                 {"params": self.head.parameters(), "lr": 3e-3}], weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(141)
    dm = DigitsTransfer()
    dm.setup()
    ckpt = os.path.join(os.getcwd(), "pretrained_backbone.pt")
    pretrain_backbone(dm.source, ckpt)
    swa = StochasticWeightAveraging(swa_lrs=1e-4, swa_epoch_start=0.7)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks() + [swa])
    trainer.fit(LitFineTune(ckpt), datamodule=dm)
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
