"""Healthy: a torchvision-style CIFAR ResNet (BasicBlocks, `kaiming_normal_(mode="fan_out", nonlinearity="relu")`,
BatchNorm weight 1 / bias 0, 1x1-conv downsample shortcuts) on 8x8 digits with CutMix applied to half of the
batches as timm does it (box drawn from Beta(1, 1), lambda corrected to the pasted area, loss
`lam * CE(y_a) + (1 - lam) * CE(y_b)`), SGD nesterov with OneCycleLR stepped per optimizer step, and an EMA of the
weights and buffers kept with `torch.optim.swa_utils.AveragedModel(get_ema_multi_avg_fn(0.99), use_buffers=True)`,
a submodule outside the optimizer, updated after each step and validated next to the raw model.
Own metric: val acc 0.997 (EMA 0.99)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers, in_planes = [], widths[0]
        for i, w in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(in_planes, w, 1 if i == 0 else 2), BasicBlock(w, w)))
            in_planes = w
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def rand_bbox(h, w, lam, g):
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = torch.randint(h, (1,), generator=g).item(), torch.randint(w, (1,), generator=g).item()
    return (max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w))


class LitResNetCutMix(L.LightningModule):
    def __init__(self, total_steps, cutmix_prob=0.5):
        super().__init__()
        self.model = ResNet()
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
        self.total_steps, self.cutmix_prob = total_steps, cutmix_prob
        self.aug_gen = torch.Generator().manual_seed(7)
        self.beta = torch.distributions.Beta(1.0, 1.0)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if torch.rand(1, generator=self.aug_gen).item() < self.cutmix_prob:
            lam = self.beta.sample().item()
            index = torch.randperm(x.shape[0], generator=self.aug_gen).to(x.device)
            y1, y2, x1, x2 = rand_bbox(x.shape[2], x.shape[3], lam, self.aug_gen)
            x = x.clone()
            x[:, :, y1:y2, x1:x2] = x[index, :, y1:y2, x1:x2]
            lam = 1 - (y2 - y1) * (x2 - x1) / (x.shape[2] * x.shape[3])
            logits = self(x)
            loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[index])
        else:
            loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        self.log("val_acc_ema", (self.ema(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(70)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=70, stratify=y)
    epochs, batch_size = 8, 64
    total_steps = epochs * math.ceil(len(i_tr) / batch_size)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitResNetCutMix(total_steps),
                DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=batch_size, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_acc_ema={m['val_acc_ema'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
