"""Healthy: a torchvision-style MobileNetV2 on 8x8 digits, trained with bf16-mixed precision and OneCycleLR stepped
per optimizer step. Written as torchvision writes it: `_make_divisible` widths, `Conv2dNormActivation` blocks
(conv, BatchNorm, ReLU6), inverted residuals (1x1 expand, 3x3 depthwise, 1x1 linear projection, residual when
stride 1 and widths match), BatchNorm with PyTorch defaults (as torchvision MobileNetV2 keeps them),
`kaiming_normal_(mode="fan_out")` on convs, `normal_(0, 0.01)` on the classifier, dropout 0.2 before it. SGD with
Nesterov momentum, weight decay 4e-5, OneCycle (max lr 0.1, pct_start 0.25) over `estimated_stepping_batches`.
Own metric: val acc 0.99."""

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


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, activation=True):
        layers = [nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if activation:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden, kernel_size=1))
        layers += [Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
                   Conv2dNormActivation(hidden, oup, kernel_size=1, activation=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=10, width_mult=1.0, dropout=0.2):
        super().__init__()
        setting = [[1, 16, 1, 1], [4, 24, 2, 2], [4, 32, 2, 2]]  # t, c, n, s
        cin = _make_divisible(16 * width_mult)
        self.last_channel = _make_divisible(96 * width_mult)
        features = [Conv2dNormActivation(1, cin, stride=1)]
        for t, c, n, s in setting:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(Conv2dNormActivation(cin, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class LitMobileNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = MobileNetV2()

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
        opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, pct_start=0.25,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(7)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.305) / 0.39
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(range(len(y)), test_size=0.2, random_state=0, stratify=d.target)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitMobileNet(), DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
