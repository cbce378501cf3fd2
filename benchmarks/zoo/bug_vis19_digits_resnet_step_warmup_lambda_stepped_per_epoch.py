"""Bug: small ResNet (three residual blocks with BatchNorm) on sklearn digits upsampled to 16x16 with random-shift
augmentation, SGD + Nesterov, accumulate_grad_batches=2. The user writes the usual linear warm-up + cosine decay as
a `LambdaLR` whose lambda counts optimizer *steps* (warm-up 150 of the ~250 optimizer steps), but returns it from
`configure_optimizers` as a bare scheduler, so Lightning steps it once per *epoch*: after 12 epochs the schedule is
at step 12 of a 150-step warm-up and the learning rate never rises above 8 % of its peak (it is exactly 0 for the
whole first epoch). Symptom: val acc 0.87 (val loss 0.78) vs 0.98 (val loss 0.05) with the fix
(`{"scheduler": sched, "interval": "step"}`)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout19"


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.short(x))


class TinyResNet(L.LightningModule):
    def __init__(self, lr=0.05, warmup=150, total=300):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.stages = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        # random shift augmentation of up to 2 pixels
        dx, dy = torch.randint(-2, 3, (2,)).tolist()
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        warmup, total = self.hparams.warmup, self.hparams.total

        def warmup_cosine(step):
            if step < warmup:
                return step / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
        return [opt], [sched]


def main():
    L.seed_everything(31)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False)
    x = (x - 0.3) / 0.35
    y = torch.tensor(digits.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    train_dl = DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(x_va, y_va), batch_size=256)
    model = TinyResNet()
    trainer = L.Trainer(max_epochs=12, accumulate_grad_batches=2, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} final_lr={float(m['lr']):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
