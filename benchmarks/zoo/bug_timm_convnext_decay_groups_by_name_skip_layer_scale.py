"""Bug (parameters in no optimizer): the timm-style ConvNeXt of
healthy_timm_convnext_layer_scale_name_based_decay_groups with its parameter groups built by name from a snippet
written for torchvision ResNets: decay on `*.weight` with ndim > 1, no decay on `*.bias` and on names containing
"norm". The layer-scale vectors are called `gamma` (neither a `.weight` nor a `.bias` nor a norm), so they sit in no
param group: they get gradients but are never updated and stay at timm's init value 1e-6 (so do the scales of the
stem's and the downsampling layer's LayerNorm2d, which sit in `nn.Sequential`s under numeric names). Every ConvNeXt
block's residual branch is multiplied by 1e-6 for the whole run (the blocks' convs and MLPs get gradients a million
times too small): the network is a patchify stem, a downsampling conv and a linear head. Symptom: val acc 0.83 vs
0.97 with the groups covering every parameter (the fixed script)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage", "vanishing-gradient"}
SPLIT = "heldout9"


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class DropPath(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
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
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x)).mul(self.gamma).permute(0, 3, 1, 2)
        return shortcut + self.drop_path(x)


class ConvNeXt(nn.Module):
    def __init__(self, num_classes=10, dims=(32, 64), depths=(2, 2), drop_path_rate=0.05):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, dims[0], 2, stride=2), LayerNorm2d(dims[0], eps=1e-6))
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        stages, k = [], 0
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            layers = []
            if i > 0:
                layers += [LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, stride=2)]
            layers += [ConvNeXtBlock(dim, dpr[k + j]) for j in range(depth)]
            k += depth
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head_norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stages(self.stem(x)).mean((2, 3))
        return self.head(self.head_norm(x))


def param_groups(model, weight_decay):
    decay = [p for n, p in model.named_parameters() if n.endswith(".weight") and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "norm" in n]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class LitConvNeXt(L.LightningModule):
    def __init__(self, lr=3e-3, warmup_steps=20):
        super().__init__()
        self.save_hyperparameters()
        self.model = ConvNeXt()

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
        opt = torch.optim.AdamW(param_groups(self.model, 0.05), lr=self.hparams.lr)
        total, warmup = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(17)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.31) / 0.38
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=17, stratify=y)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, accumulate_grad_batches=2,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitConvNeXt(), DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
