"""Bug (validation differs from training): a torchvision-style DenseNet-BC (dense layers BN-ReLU-1x1 conv-BN-ReLU-3x3
conv with growth rate 12, a compressing transition, `kaiming_normal_` convs, BN weight 1 / bias 0) on 8x8 digits.
The training images come from the in-house array; the hold-out set ships as a flat 64-column CSV written by the
labelling team's R script, which stores each image column-major. The loader reads it back with
`val_flat.reshape(-1, 8, 8)` (C order) instead of `order="F"`, so every validation digit is transposed: the
validation set is a different distribution from training. Symptom: val acc 0.10 vs 0.98 with `order="F"`, while
the training loss falls normally.

Training: SGD momentum 0.9, nesterov, weight decay 5e-4 on conv/linear weights only, MultiStepLR at epochs 6 and 9."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout6"


class DenseLayer(nn.Module):
    def __init__(self, in_ch, growth, bn_size=4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Sequential):
    def __init__(self, in_ch, out_ch):
        super().__init__(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, 1, bias=False),
                         nn.AvgPool2d(2))


class DenseNet(nn.Module):
    def __init__(self, growth=12, block_config=(4, 4), init_ch=24, num_classes=10):
        super().__init__()
        layers = [nn.Conv2d(1, init_ch, 3, padding=1, bias=False)]
        ch = init_ch
        for i, n in enumerate(block_config):
            for _ in range(n):
                layers.append(DenseLayer(ch, growth))
                ch += growth
            if i != len(block_config) - 1:
                layers.append(Transition(ch, ch // 2))
                ch //= 2
        layers += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class LitDenseNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = DenseNet()

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
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=0.05, momentum=0.9, nesterov=True)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[6, 9], gamma=0.1)]


def main():
    L.seed_everything(62)
    d = load_digits()
    i_tr, i_va = train_test_split(np.arange(len(d.target)), test_size=0.25, random_state=62, stratify=d.target)
    train_images = d.images[i_tr] / 16.0
    # the hold-out export: one row per image, pixels written column by column (R's as.vector on a matrix)
    val_flat = d.images[i_va].transpose(0, 2, 1).reshape(-1, 64) / 16.0
    val_images = val_flat.reshape(-1, 8, 8)

    def to_tensor(images):
        return (torch.tensor(images, dtype=torch.float32).unsqueeze(1) - 0.3) / 0.4

    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitDenseNet(),
                DataLoader(TensorDataset(to_tensor(train_images), torch.tensor(d.target[i_tr])), batch_size=64,
                           shuffle=True),
                DataLoader(TensorDataset(to_tensor(val_images), torch.tensor(d.target[i_va])), batch_size=150))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f} train_loss={m['train_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
