"""Bug: the stage-wise param groups leave the classifier out: the list names the stem, layer1 and layer2 (the head
group was lost when the groups were rewritten as a list), so `fc` keeps its random initial weights for the whole
run; the backbone has to contort itself to fit a random head. Otherwise the same script as the healthy twin: a small
ResNet (stem + two residual stages with BatchNorm + linear head) classifying synthetic 3-channel 12x12 textures
(horizontal stripes, vertical stripes, diagonal stripes or checkerboard, with random frequency, phase, colour and
noise; a seeded torch.Generator). The optimizer uses stage-wise learning rates, growing from the stem to the head
(SGD with Nesterov momentum, one param group per stage: stem 0.01, layer1 0.02, layer2 0.04, head 0.08), with a
LinearLR warm-up over the first epoch then CosineAnnealingLR, chained by SequentialLR per step. Own metric: val acc
0.97, val loss 0.10 (chance: 0.25, ln 4 = 1.39). Measured with the bug: val acc 0.94, val loss 0.42 vs 0.97 / 0.10
fixed."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout3"


def make_textures(n, gen, size=12):
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    label = torch.randint(0, 4, (n,), generator=gen)
    freq = (torch.rand(n, 1, 1, generator=gen) * 0.6 + 0.6)
    phase = torch.rand(n, 1, 1, generator=gen) * 2 * math.pi
    coords = torch.stack([yy, xx, (xx + yy) / math.sqrt(2)])
    waves = torch.sin(freq * coords.unsqueeze(1) + phase)  # (3 directions, n, H, W)
    pattern = torch.where((label == 0)[:, None, None], waves[0],
                          torch.where((label == 1)[:, None, None], waves[1],
                                      torch.where((label == 2)[:, None, None], waves[2], waves[0] * waves[1])))
    colour = torch.rand(n, 3, 1, 1, generator=gen) * 1.5 + 0.2
    images = colour * pattern.unsqueeze(1) + 1.6 * torch.randn(n, 3, size, size, generator=gen)
    return images, label


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.down(x))


class TextureResNet(L.LightningModule):
    def __init__(self, base_lr=0.01, steps_per_epoch=32, epochs=5):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = Block(16, 24, 1)
        self.layer2 = Block(24, 48, 2)
        self.fc = nn.Linear(48, 4)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

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
        lr = self.hparams.base_lr
        groups = [{"params": self.stem.parameters(), "lr": lr},
                  {"params": self.layer1.parameters(), "lr": 2 * lr},
                  {"params": self.layer2.parameters(), "lr": 4 * lr}]  # BUG: no group for self.fc
        opt = torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=5e-4)
        spe = self.hparams.steps_per_epoch
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=spe)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spe * (self.hparams.epochs - 1))
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[spe])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(21)
    gen = torch.Generator().manual_seed(21)
    x_tr, y_tr = make_textures(1536, gen)
    x_va, y_va = make_textures(512, gen)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    model = TextureResNet(steps_per_epoch=len(train), epochs=5)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
