"""Healthy: a pre-activation ResNet (BN-ReLU-conv blocks written here) ported from a Keras recipe that used
`BatchNormalization(momentum=0.99)`; the port converts it to PyTorch's convention (`momentum = 1 - 0.99 = 0.01`, the
weight of the NEW batch). sklearn's 8x8 digits, batches of 16, SGD with momentum, MultiStepLR at epochs 4 and 6.
Reaches val acc ~0.98 (early validations are lower while the slow running statistics warm up)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"

KERAS_BN_MOMENTUM = 0.99
BN_MOMENTUM = 1 - KERAS_BN_MOMENTUM  # PyTorch weighs the new batch by `momentum`


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class PreActResNet(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(PreActBlock(16, 16), PreActBlock(16, 32, stride=2))
        self.bn = nn.BatchNorm2d(32, momentum=BN_MOMENTUM)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))

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
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 6], gamma=0.1)]


def main():
    L.seed_everything(8)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) - 4.9) / 6.0
    ds = TensorDataset(x, torch.tensor(d.target))
    train, val = random_split(ds, [1400, 397], generator=torch.Generator().manual_seed(8))
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PreActResNet(), DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=128))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
