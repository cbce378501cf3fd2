"""Bug: the training images are normalised with the training mean/std, the validation images are left as raw pixel
values 0..16 (the validation loader was built from `pixels`, not from the transformed tensor). A MobileNetV2-style
network (inverted residual blocks written here, BatchNorm, ReLU6) on sklearn's 8x8 digits, trained with
`precision="bf16-mixed"` on CPU, SGD with Nesterov momentum and a triangular CyclicLR sized in batches. Val acc 0.08
vs 0.975 with both splits normalised (healthy_mobilenet_bf16_cycliclr)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence", "input-scale"}
SPLIT = "heldout2"


def conv_bn(cin, cout, kernel, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(conv_bn(cin, hidden, 1), conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                   conv_bn(hidden, cout, 1, act=False))

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class TinyMobileNet(L.LightningModule):
    def __init__(self, lr=0.05, half_cycle=0):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(conv_bn(1, 16, 3), InvertedResidual(16, 16, 1, 4),
                                      InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4))
        self.head = nn.Linear(24, 10)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))

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
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=4e-5)
        cyc = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=self.hparams.lr / 10, max_lr=self.hparams.lr,
                                                step_size_up=self.hparams.half_cycle, mode="triangular")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cyc, "interval": "step"}}


def main():
    L.seed_everything(21)
    d = load_digits()
    pixels = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(d.target)
    perm = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(21))
    train_idx, val_idx = perm[:1400], perm[1400:]
    mean, std = pixels[train_idx].mean(), pixels[train_idx].std()
    normalize = lambda t: (t - mean) / std
    train_loader = DataLoader(TensorDataset(normalize(pixels[train_idx]), labels[train_idx]), batch_size=64,
                              shuffle=True)
    val_loader = DataLoader(TensorDataset(pixels[val_idx], labels[val_idx]), batch_size=128)  # BUG: raw pixels
    model = TinyMobileNet(half_cycle=2 * len(train_loader))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_loader, val_loader)
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
