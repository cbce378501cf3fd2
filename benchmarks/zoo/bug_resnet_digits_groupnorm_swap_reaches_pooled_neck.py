"""Small hand-written ResNet (stem + 3 basic blocks + pooled neck + linear head) on sklearn's 8x8 digits, trained
with micro-batches of 8 and gradient accumulation. The architecture takes a `norm_layer` factory, as
torchvision's ResNet does; the original code used BatchNorm2d everywhere, including a "BNNeck" (a BatchNorm2d on the
pooled (B, C, 1, 1) features, a re-identification trick).

Bug: because BatchNorm is poor with batches of 8, the user switched the factory to the usual GroupNorm recipe,
`lambda c: nn.GroupNorm(min(32, c), c)`. In the blocks that is fine, but the neck has 32 channels and a 1x1
spatial map: GroupNorm(32, 32) normalises each channel of each sample over a single value, so the neck outputs
exactly its bias for every input. The head sees the same vector for every image; the loss settles at the label
prior's entropy and the network predicts one class. Nothing errors (GroupNorm, unlike InstanceNorm, does not
check the group size).
Measured symptom: val acc 0.10 (val loss 2.30, one class predicted) vs 0.98 with the fix (the neck keeps a norm
that does not reduce over a single element, or none; measured with none).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"constant-output"}
SPLIT = "heldout11"


def group_norm(c):
    return nn.GroupNorm(min(32, c), c)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, norm_layer):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = norm_layer(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = norm_layer(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), norm_layer(cout))

    def forward(self, x):
        h = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(h)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, norm_layer=nn.BatchNorm2d, widths=(16, 32, 32), n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), norm_layer(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(cin, w, 1 if i == 0 else 2, norm_layer))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.neck = norm_layer(cin)                    # BNNeck
        self.head = nn.Linear(cin, n_classes)

    def forward(self, x):
        h = self.pool(self.blocks(self.stem(x)))
        return self.head(self.neck(h).flatten(1))


class DigitsResNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = ResNet(norm_layer=group_norm)

    def forward(self, x):
        return self.net(x)

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
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(808)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    tr, va = train_test_split(range(len(y)), test_size=0.2, random_state=0, stratify=d.target)
    model = DigitsResNet()
    trainer = L.Trainer(max_epochs=5, accumulate_grad_batches=4, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="digits_resnet_gn"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr]), batch_size=8, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=256))
    model.eval()
    with torch.no_grad():
        logits = model(x[va])
    acc = (logits.argmax(1) == y[va]).float().mean()
    print(f"SYMPTOM val_acc={acc:.3f} val_loss={F.cross_entropy(logits, y[va]):.3f} "
          f"distinct_predictions={logits.argmax(1).unique().numel()}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
