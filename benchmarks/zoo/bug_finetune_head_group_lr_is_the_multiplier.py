"""Bug (parameter groups): the new head's groups were meant to train at 10x the backbone's lr, but the
multiplier itself went in: `{"params": [self.head.weight], "lr": HEAD_LR_MULT}`, i.e. lr 10 for AdamW, whose step
size is about lr per weight per step. Symptom: val acc 0.86 vs 0.97 with `BASE_LR * HEAD_LR_MULT` (3e-3).

Set-up: a Conv-BN-ReLU backbone pretrained in a plain PyTorch loop on digits 0-4, fine-tuned on digits 5-9 with 200
labelled images; frozen stem kept in eval mode, AdamW parameter groups without weight decay on norms/biases,
`precision="bf16-mixed"`, warm-up LambdaLR per step."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"update-ratio", "weight-growth", "prediction-jitter", "loss-trend"}
SPLIT = "heldout5"
BASE_LR = 3e-4
HEAD_LR_MULT = 10.0


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.stage1 = nn.Sequential(conv_bn(16, 32, 2), conv_bn(32, 32))
        self.stage2 = nn.Sequential(conv_bn(32, 64, 2), conv_bn(64, 64))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.stage2(self.stage1(self.stem(x))), 1).flatten(1)


def pretrain(backbone, x, y, steps=150):
    head = nn.Linear(64, 5)
    opt = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=2e-3)
    for step in range(steps):
        idx = torch.randint(0, len(y), (64,))
        loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backbone


class FineTuner(L.LightningModule):
    def __init__(self, backbone, warmup=10):
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(64, 5)
        self.backbone.stem.requires_grad_(False)
        self.warmup = warmup

    def train(self, mode=True):
        super().train(mode)
        self.backbone.stem.eval()  # frozen stem keeps its pretrained BatchNorm statistics
        return self

    def forward(self, x):
        return self.head(self.backbone(x))

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
        body = [(n, p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in body if p.ndim > 1], "lr": BASE_LR, "weight_decay": 0.01},
            {"params": [p for n, p in body if p.ndim <= 1], "lr": BASE_LR, "weight_decay": 0.0},
            {"params": [self.head.weight], "lr": HEAD_LR_MULT, "weight_decay": 0.01},
            {"params": [self.head.bias], "lr": HEAD_LR_MULT, "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(113)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    src, tgt = y < 5, y >= 5
    backbone = pretrain(Backbone(), x[src], y[src])
    xt, yt = x[tgt], y[tgt] - 5
    perm = torch.randperm(len(yt), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:200], perm[200:]
    trainer = L.Trainer(max_epochs=15, precision="bf16-mixed", accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(backbone), DataLoader(TensorDataset(xt[tr], yt[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xt[va], yt[va]), batch_size=400))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
