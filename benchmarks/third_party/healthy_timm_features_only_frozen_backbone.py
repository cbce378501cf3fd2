"""Healthy: fine-tuning style. A timm ResNet-26 backbone is first "pretrained" here (a plain PyTorch loop on stripe
orientation), saved with ``torch.save`` and reloaded into ``timm.create_model("resnet26", features_only=True,
out_indices=(2, 3, 4))``. The backbone is then frozen (requires_grad False) with its BatchNorm layers kept in eval
mode, as one does with a frozen pretrained backbone, and only a new head (pooled multi-scale features ->
Linear-GELU-Linear) trains on a new, noisier stripes data set with Adam lr 1e-3."""
import os
import tempfile

import lightning as L
import timm
import torch
import torch.nn.functional as F
from torch import nn

from _vision import Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"


def pretrain(path: str) -> None:
    net = timm.create_model("resnet26", pretrained=False, num_classes=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    data = torch.utils.data.DataLoader(Normalized(stripes(768, seed=35), augment=shift), batch_size=32, shuffle=True)
    for _ in range(2):
        for x, y in data:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    torch.save(net.state_dict(), path)


class FrozenBackboneClassifier(L.LightningModule):
    def __init__(self, checkpoint: str) -> None:
        super().__init__()
        self.backbone = timm.create_model("resnet26", pretrained=False, features_only=True, out_indices=(2, 3, 4))
        state = torch.load(checkpoint)
        missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        assert not missing and set(unexpected) == {"fc.weight", "fc.bias"}, (missing, unexpected)
        self.backbone.requires_grad_(False)
        width = sum(self.backbone.feature_info.channels())
        self.head = nn.Sequential(nn.Linear(width, 128), nn.GELU(), nn.Linear(128, 4))

    def on_train_epoch_start(self):
        self.backbone.eval()  # frozen: BatchNorm keeps the pretrained statistics

    def forward(self, x):
        feats = self.backbone(x)
        return self.head(torch.cat([f.mean((2, 3)) for f in feats], dim=1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-3)


if __name__ == "__main__":
    L.seed_everything(71)
    ckpt = os.path.join(tempfile.mkdtemp(), "pretrained_resnet26.pt")
    pretrain(ckpt)
    train, val = loaders(Normalized(stripes(1024, seed=36, noise=0.4), augment=shift),
                         Normalized(stripes(256, seed=37, noise=0.4)), batch_size=32)
    fit(FrozenBackboneClassifier(ckpt), train, val, epochs=4)
