"""Bug: the torchvision recipe "zero_init_residual" (set the last BatchNorm gamma of each residual branch to zero
so every block starts as the identity) is written as a loop over every BatchNorm2d in the network, including the
stem's and each block's first BN and the projection shortcuts' BN. With the stem's gamma and beta both zero the
stem outputs relu(0) = 0 for every image, every later activation is 0, and no gradient reaches the convolutions
(and relu'(0) = 0 blocks the BN shifts too): only the classifier bias learns. Model: torchvision-style ResNet
(BasicBlock, conv3x3 without bias, BN, projection shortcuts, kaiming_normal_(mode="fan_out")) on 8x8 digits, SGD
momentum 0.9 nesterov, weight decay 5e-4, OneCycleLR per step. Own metric: val acc. Fixed (gamma zeroed on each
block's bn2 only): val acc 0.98. With the bug: val acc 0.10 (constant prediction)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient", "constant-output", "vanishing-gradient"}
SPLIT = "heldout4"


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers=(1, 1, 1), widths=(16, 32, 64), num_classes=10, zero_init_residual=True):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = conv3x3(1, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(widths[0], layers[0])
        self.layer2 = self._make_layer(widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(widths[2], layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):  # BUG: meant each BasicBlock's bn2 only
                    nn.init.constant_(m.weight, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class LitResNet(L.LightningModule):
    def __init__(self, total_steps):
        super().__init__()
        self.model = ResNet()
        self.total_steps = total_steps

    def forward(self, x):
        return self.model(x)

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
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(61)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.31) / 0.38
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    epochs, bs = 6, 64
    model = LitResNet(total_steps=epochs * ((len(i_tr) + bs - 1) // bs))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=bs, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
