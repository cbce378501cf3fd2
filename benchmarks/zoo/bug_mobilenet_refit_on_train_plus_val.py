"""Bug: after a hyper-parameter search, the "final fit" step trains on `ConcatDataset([train_ds, val_ds])` (the usual
refit on all labelled data) but keeps `val_ds` as the validation set for checkpointing and reporting, so every
validation image was also trained on. Model: a MobileNetV3-style CNN (inverted residual blocks with depthwise convs,
hardswish, squeeze-excitation with hardsigmoid, BatchNorm with eps 1e-3, kaiming fan_out init),
AdamW, cosine annealing per epoch. Data: synthetic 12x12 "texture" images from a seeded torch.Generator (5 classes of
oriented stripe patterns with random phase, frequency jitter and strong noise; labels also 10% noisy).
Own metric: val acc vs a clean, never-seen test set. Fixed (train on train_ds only): val acc 0.78, test acc 0.79.
With the bug: val acc 0.95 (too good to be true) while the test set gives 0.80."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout4"


def make_textures(n, gen, size=12, n_classes=5):
    y = torch.randint(0, n_classes, (n,), generator=gen)
    angle = y.float() * math.pi / n_classes + 0.15 * torch.randn(n, generator=gen)
    freq = 1.2 + 0.2 * torch.randn(n, generator=gen)
    phase = torch.rand(n, generator=gen) * 2 * math.pi
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    proj = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    img = torch.sin(freq[:, None, None] * proj + phase[:, None, None]) + 0.9 * torch.randn(n, size, size, generator=gen)
    flip = torch.rand(n, generator=gen) < 0.1
    y = torch.where(flip, torch.randint(0, n_classes, (n,), generator=gen), y)
    return img.unsqueeze(1), y


class SqueezeExcite(nn.Module):
    def __init__(self, ch, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(ch, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, ch, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


def conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)]
    if act:
        layers.append(nn.Hardswish())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, exp, cout, stride, use_se):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(conv_bn(cin, exp, 1), conv_bn(exp, exp, 3, stride, groups=exp),
                                   SqueezeExcite(exp, max(8, exp // 4)) if use_se else nn.Identity(),
                                   conv_bn(exp, cout, 1, act=False))

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_res else out


class MobileNetV3Tiny(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(conv_bn(1, 16, 3), InvertedResidual(16, 48, 16, 1, False),
                                      InvertedResidual(16, 64, 24, 2, True), InvertedResidual(24, 72, 24, 1, True),
                                      conv_bn(24, 96, 1))
        self.classifier = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class LitMobileNet(L.LightningModule):
    def __init__(self, epochs):
        super().__init__()
        self.model = MobileNetV3Tiny()
        self.epochs = epochs

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
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)]


def main():
    L.seed_everything(21)
    gen = torch.Generator().manual_seed(21)
    x, y = make_textures(900, gen)
    train_ds = TensorDataset(x[:600], y[:600])
    val_ds = TensorDataset(x[600:], y[600:])
    test_x, test_y = make_textures(600, gen)
    # final fit on all labelled data after the search; BUG: validation still runs on val_ds
    fit_ds = ConcatDataset([train_ds, val_ds])
    epochs = 12
    model = LitMobileNet(epochs)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(fit_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=300))
    model.eval()
    with torch.no_grad():
        test_acc = (model(test_x).argmax(1) == test_y).float().mean()
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f} test_acc={test_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
