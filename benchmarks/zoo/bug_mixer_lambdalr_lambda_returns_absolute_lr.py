"""Bug (lr schedule): the warm-up + cosine function was ported from a training loop that set
`group["lr"] = lr_at(step)` by hand, so it returns the learning rate itself (peak 2e-3 times the factor); plugged
into `LambdaLR`, which multiplies the optimizer's base lr by what the lambda returns, the effective peak lr is
2e-3 * 2e-3 = 4e-6. Symptom: val acc 0.46 vs 0.97 with the lambda returning the factor; train loss barely moves
from ln(10).

Model: a timm-style MLP-Mixer (2x2 patch embedding by a strided conv, pre-norm token-mixing and channel-mixing
MLPs with GELU, drop-path, xavier-uniform linears, a zero-initialized classifier head as timm does) on standardized
8x8 digits. AdamW lr 2e-3 with parameter groups (no weight decay on norms/biases), a linear warm-up then cosine
factor in a LambdaLR stepped per optimizer step, `accumulate_grad_batches=2`, `max_steps` instead of epochs, label
smoothing 0.1."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule", "update-ratio", "loss-trend"}
SPLIT = "heldout5"


class DropPath(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MixerBlock(nn.Module):
    def __init__(self, dim, seq_len, drop_path):
        super().__init__()
        self.norm1, self.mlp_tokens = nn.LayerNorm(dim), Mlp(seq_len, seq_len * 2)
        self.norm2, self.mlp_channels = nn.LayerNorm(dim), Mlp(dim, dim * 4)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class MlpMixer(nn.Module):
    def __init__(self, num_classes=10, dim=64, depth=4, patch=2, img=8, drop_path_rate=0.1):
        super().__init__()
        seq_len = (img // patch) ** 2
        self.stem = nn.Conv2d(1, dim, patch, patch)
        dpr = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[MixerBlock(dim, seq_len, dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name == "head":
                    nn.init.zeros_(m.weight)
                else:
                    nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)  # B, tokens, dim
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


class LitMixer(L.LightningModule):
    def __init__(self, max_steps, warmup_steps=20, lr=2e-3):
        super().__init__()
        self.model = MlpMixer()
        self.max_steps, self.warmup_steps, self.lr = max_steps, warmup_steps, lr

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
        groups = [
            {"params": [p for p in self.model.parameters() if p.ndim > 1], "weight_decay": 0.05},
            {"params": [p for p in self.model.parameters() if p.ndim <= 1], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.lr, betas=(0.9, 0.99))

        def warmup_cosine(step):
            if step < self.warmup_steps:
                return self.lr * (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(37)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.25, random_state=1, stratify=y)
    max_steps = 200
    model = LitMixer(max_steps=max_steps)
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=2, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        val_check_interval=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
