"""Healthy: transfer learning the torchvision way. A small torchvision-style ResNet (BasicBlock, `zero_init_residual`,
`kaiming_normal_(mode="fan_out", nonlinearity="relu")`, 1x1 conv + BN downsample) is first "pretrained" in plain
PyTorch on digits 0-4 (offline stand-in for ImageNet weights), then fine-tuned with Lightning on digits 5-9 with a new
`fc`: stem and layer1 frozen (`requires_grad_(False)`, their BatchNorms kept in eval mode by a `train()` override),
discriminative learning rates (layer2 3e-4, layer3 1e-3, new head 5e-3), AdamW parameter groups with no weight decay on
biases and BatchNorm weights, cosine annealing per epoch. Own metric: fine-tune val acc 0.98 (5 classes)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers=(1, 1, 1), num_classes=5, zero_init_residual=True):
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, layers[0])
        self.layer2 = self._make_layer(32, layers[1], stride=2)
        self.layer3 = self._make_layer(64, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

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


def pretrain(model, x, y, epochs=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


class FineTuner(L.LightningModule):
    def __init__(self, model, frozen=("conv1", "bn1", "layer1")):
        super().__init__()
        self.model = model
        self.model.fc = nn.Linear(self.model.fc.in_features, 5)
        self.frozen = [getattr(self.model, n) for n in frozen]
        for m in self.frozen:
            m.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

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
        groups = []
        for module, lr in ((self.model.layer2, 3e-4), (self.model.layer3, 1e-3), (self.model.fc, 5e-3)):
            decay = [p for n, p in module.named_parameters() if p.ndim > 1]
            no_decay = [p for n, p in module.named_parameters() if p.ndim <= 1]
            groups += [{"params": decay, "lr": lr, "weight_decay": 1e-2},
                       {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(3)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.305) / 0.39
    y = torch.tensor(d.target)
    src = y < 5
    model = pretrain(ResNet(), x[src], y[src])
    xt, yt = x[~src], y[~src] - 5
    i_tr, i_va = train_test_split(range(len(yt)), test_size=0.3, random_state=0, stratify=yt.numpy())
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(model), DataLoader(TensorDataset(xt[i_tr], yt[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xt[i_va], yt[i_va]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
