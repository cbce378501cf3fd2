"""Bug (validation pipeline): the validation images are read by a second, "faster" loader written with OpenCV
conventions, which hands back BGR channel order, and nobody converts them to RGB (`cv2.cvtColor(..., BGR2RGB)` is
missing). Training images are RGB. The class depends on whether red or blue dominates, so validation sees
red/blue swapped. Symptom: val acc 0.00 (every red image is read as blue and vice versa) vs 1.00 with the conversion;
the training loss is as low as in the fixed run.

Model: a torchvision-style EfficientNet (Conv-BN-SiLU stem, MBConv blocks with expansion, depthwise conv,
squeeze-excitation, stochastic depth in "row" mode, BatchNorm eps=1e-3, `kaiming_normal_(mode="fan_out")`, linear
layers uniform(+-1/sqrt(out))) on synthetic RGB stripe textures (class = dominant colour x stripe orientation), HWC
float images converted to CHW and normalized with the training mean/std. AdamW with no weight decay on norms and
biases, linear warm-up then cosine per step, label smoothing 0.1.."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout5"


def make_textures(n, gen):
    """HWC float images in [0, 1]: red- or blue-dominant, horizontal or vertical stripes."""
    y = torch.randint(0, 4, (n,), generator=gen)
    colour, vertical = y // 2, y % 2
    coords = torch.arange(16.0)
    freq = 0.6 + 0.6 * torch.rand(n, generator=gen)
    phase = 6.28 * torch.rand(n, generator=gen)
    wave = 0.5 + 0.5 * torch.sin(freq[:, None] * coords[None] + phase[:, None])  # n, 16
    pattern = torch.where(vertical[:, None, None].bool(), wave[:, None, :].expand(n, 16, 16),
                          wave[:, :, None].expand(n, 16, 16))
    base = torch.rand(n, 3, generator=gen) * 0.3
    base[torch.arange(n), 2 * colour] += 0.55  # channel 0 (red) or 2 (blue) dominant
    img = base[:, None, None, :] * (0.4 + 0.6 * pattern[..., None])
    img = img + 0.08 * torch.randn(n, 16, 16, 3, generator=gen)
    return img.clamp(0, 1), y


class ImageDataset(Dataset):
    def __init__(self, images_hwc, labels, mean, std):
        self.images, self.labels, self.mean, self.std = images_hwc, labels, mean, std

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = self.images[i].permute(2, 0, 1)
        return (img - self.mean[:, None, None]) / self.std[:, None, None], self.labels[i]


def load_like_cv2(images_rgb):
    """The eval-side loader (written for cv2.imread): channel order comes back as BGR."""
    return images_rgb.flip(-1)


def stochastic_depth(x, p, training):
    if not training or p == 0.0:
        return x
    keep = torch.empty(x.shape[0], 1, 1, 1, device=x.device).bernoulli_(1 - p)
    return x * keep / (1 - p)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class SqueezeExcitation(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class MBConv(nn.Module):
    def __init__(self, cin, cout, expand, stride, sd_prob):
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), bn(mid), nn.SiLU(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), bn(mid), nn.SiLU(),
            SqueezeExcitation(mid, max(1, cin // 4)),
            nn.Conv2d(mid, cout, 1, bias=False), bn(cout))
        self.sd_prob = sd_prob

    def forward(self, x):
        out = self.block(x)
        return x + stochastic_depth(out, self.sd_prob, self.training) if self.use_res else out


class EfficientNet(nn.Module):
    def __init__(self, num_classes=4, sd=0.1):
        super().__init__()
        cfg = [(16, 16, 1, 1), (16, 24, 4, 2), (24, 24, 4, 1), (24, 40, 4, 2), (40, 40, 4, 1)]
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), bn(16), nn.SiLU())
        self.blocks = nn.Sequential(*[MBConv(a, b, e, s, sd * i / len(cfg)) for i, (a, b, e, s) in enumerate(cfg)])
        self.head = nn.Sequential(nn.Conv2d(40, 96, 1, bias=False), bn(96), nn.SiLU())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(96, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LitEfficientNet(L.LightningModule):
    def __init__(self, total_steps, warmup=30):
        super().__init__()
        self.model = EfficientNet()
        self.total_steps, self.warmup = total_steps, warmup

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=3e-3)

        def lr_lambda(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            t = (step - self.warmup) / max(1, self.total_steps - self.warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(29)
    gen = torch.Generator().manual_seed(23)
    x_tr, y_tr = make_textures(1600, gen)
    x_va, y_va = make_textures(400, gen)
    x_va = load_like_cv2(x_va)
    mean, std = x_tr.mean((0, 1, 2)), x_tr.std((0, 1, 2))
    epochs, bs = 5, 64
    model = LitEfficientNet(total_steps=epochs * math.ceil(len(y_tr) / bs))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(ImageDataset(x_tr, y_tr, mean, std), batch_size=bs, shuffle=True),
                DataLoader(ImageDataset(x_va, y_va, mean, std), batch_size=200))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
