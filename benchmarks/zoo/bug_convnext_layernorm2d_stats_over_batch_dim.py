"""Bug (samples of a batch mix): a timm-style ConvNeXt on 8x8 digits whose channels-first `LayerNorm2d` (used
after the patchify stem and in the downsampling layer) was copied from a notebook that normalised one unbatched
`(C, H, W)` image, where channels are dim 0: `u = x.mean(0, keepdim=True)`. On `(N, C, H, W)` batches it normalises
each position over the batch instead of over the channels, a BatchNorm without running statistics: every
prediction depends on the other images of the batch. Training and batched validation look fine, but an image
classified on its own comes out as the constant bias. Symptom: val acc 0.99 on batches of 120 images, 0.10 when the
same images are classified one at a time (the fixed model with `mean(1)`: 0.99 and 0.99).

The rest is ConvNeXt as timm writes it: depthwise conv, LayerNorm on channels-last, inverted MLP with GELU,
layer-scale (init 1e-6), drop-path, `trunc_normal_(std=.02)` init, AdamW (no weight decay on norms, biases,
layer-scale), warm-up then cosine per step, label smoothing 0.1."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout6"


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a channels-first tensor."""

    def __init__(self, num_channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x):
        u = x.mean(0, keepdim=True)
        s = (x - u).pow(2).mean(0, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class DropPath(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, drop_path=0.0, ls_init_value=1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        shortcut = x
        x = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))) * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))


class ConvNeXt(nn.Module):
    def __init__(self, num_classes=10, dims=(32, 64), depths=(2, 2), drop_path_rate=0.1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, dims[0], 2, stride=2), LayerNorm2d(dims[0]))
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        k = 0
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            down = nn.Identity() if i == 0 else nn.Sequential(LayerNorm2d(dims[i - 1]),
                                                              nn.Conv2d(dims[i - 1], dim, 2, stride=2))
            self.stages.append(nn.Sequential(down, *[ConvNeXtBlock(dim, dpr[k + j]) for j in range(depth)]))
            k += depth
        self.norm_pre_head = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.norm_pre_head(x.mean((2, 3))))


class LitConvNeXt(L.LightningModule):
    def __init__(self, total_steps, warmup=30):
        super().__init__()
        self.model = ConvNeXt()
        self.total_steps, self.warmup = total_steps, warmup

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
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
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=4e-3)

        def lr_lambda(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            t = (step - self.warmup) / max(1, self.total_steps - self.warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(65)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=65, stratify=y)
    epochs, batch_size = 12, 64
    total_steps = epochs * math.ceil(len(i_tr) / batch_size)
    model = LitConvNeXt(total_steps)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=batch_size, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=120))
    model.eval()
    with torch.no_grad():
        one_at_a_time = torch.cat([model(x[i:i + 1]) for i in i_va.tolist()]).argmax(1)
    single_acc = (one_at_a_time == y[i_va]).float().mean().item()
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f} single_image_acc={single_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
