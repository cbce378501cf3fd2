"""Healthy: a hand-written pre-activation ResNet (BN-ReLU-conv blocks, 1x1 projection shortcuts) on sklearn's
8x8 digits with random 1-pixel shifts, label smoothing 0.1, SGD with Nesterov momentum, weight decay only on conv
and linear weights (BatchNorm parameters and biases in a no-decay group), and a per-step linear warm-up followed
by cosine decay written as a LambdaLR. Final val acc about 0.98."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        short = x if self.proj is None else self.proj(a)
        h = self.conv1(a)
        h = self.conv2(F.relu(self.bn2(h)))
        return h + short


class PreActResNet(L.LightningModule):
    def __init__(self, lr=0.1, weight_decay=5e-4, warmup_steps=60):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Conv2d(1, 32, 3, 1, 1, bias=False)
        self.layers = nn.Sequential(PreActBlock(32, 32, 1), PreActBlock(32, 32, 1),
                                    PreActBlock(32, 64, 2), PreActBlock(64, 64, 1))
        self.bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = F.relu(self.bn(self.layers(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    @staticmethod
    def shift(x):
        dx, dy = torch.randint(-1, 2, (2,)).tolist()
        return torch.roll(F.pad(x, (1, 1, 1, 1)), shifts=(dy, dx), dims=(2, 3))[:, :, 1:-1, 1:-1]

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(self.shift(x)), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        opt = torch.optim.SGD([{"params": decay, "weight_decay": self.hparams.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=self.hparams.lr, momentum=0.9, nesterov=True)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup_steps

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(123)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.42
    y = torch.tensor(d.target)
    tr, va = train_test_split(range(len(y)), test_size=0.2, random_state=1, stratify=d.target)
    model = PreActResNet()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="preact"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=360))
    model.eval()
    with torch.no_grad():
        acc = (model(x[va]).argmax(1) == y[va]).float().mean()
    print(f"SYMPTOM val_acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
