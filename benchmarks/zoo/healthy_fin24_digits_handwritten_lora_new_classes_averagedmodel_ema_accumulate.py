"""Healthy: LoRA fine-tuning written by hand, with EMA evaluation. An MLP is pretrained (short plain-PyTorch phase) on
scikit-learn digits 0-4. For digits 5-9 its Linear layers are wrapped in `LoRALinear` (frozen base weight plus a
rank-4 update B @ A scaled by alpha / r, A Kaiming-initialised, B zero), the old head is replaced by a new 5-way head,
and only the LoRA factors and the head train: AdamW, linear warm-up + cosine per optimizer step, gradient
accumulation 2 over micro-batches of 16. Validation runs an EMA copy built with
`torch.optim.swa_utils.AveragedModel(..., multi_avg_fn=get_ema_multi_avg_fn(0.95))`, updated once per optimizer
step; at the end the LoRA update is merged into the base weights.

Why it is correct: the EMA copy is a submodule, so its parameters are frozen explicitly (they are averaged, never
optimised), and it is updated only when `(batch_idx + 1) % accumulate_grad_batches == 0`, i.e. after real optimizer
steps; the base weights are frozen and out of the optimizer, the scaling alpha / r is a float, and B = 0 means the
adapted network starts exactly at the pretrained features (the A factors get gradient from the first update of B on).
The merge check confirms that W + (alpha / r) B A reproduces the adapted outputs. Measured: EMA val acc 0.975,
val CE 0.137, merged-vs-adapted max |diff| 2.9e-6."""

import copy
import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r=4, alpha=8):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(r, base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T

    def merged(self):
        lin = copy.deepcopy(self.base)
        lin.weight.data += self.scale * self.B.data @ self.A.data
        return lin


def pretrained_mlp(X, y):
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net(X), y).backward()
        opt.step()
    return net


class LoRAFineTune(L.LightningModule):
    def __init__(self, net, warmup=20, lr=5e-3):
        super().__init__()
        net[0], net[2], net[4] = LoRALinear(net[0]), LoRALinear(net[2]), nn.Linear(64, 5)
        self.net = net
        self.ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.95)).requires_grad_(False)
        self.warmup, self.lr = warmup, lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0:
            self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.ema(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        total = self.trainer.estimated_stepping_batches

        def warmup_cosine(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return 0.5 * (1 + math.cos(math.pi * (step - self.warmup) / (total - self.warmup)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine), "interval": "step"}]


def main():
    L.seed_everything(2409)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 8.0 - 1.0, dtype=torch.float32)
    y = torch.tensor(y)
    net = pretrained_mlp(X[y < 5], y[y < 5])
    Xh, yh = X[y >= 5], y[y >= 5] - 5
    perm = torch.as_tensor(np.random.default_rng(2).permutation(len(Xh)))
    tr, va = perm[:500], perm[500:]
    model = LoRAFineTune(net)
    trainer = L.Trainer(max_epochs=8, accumulate_grad_batches=2, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(Xh[tr], yh[tr]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(Xh[va], yh[va]), batch_size=400))
    adapted = model.net.eval()
    merged = nn.Sequential(adapted[0].merged(), nn.ReLU(), adapted[2].merged(), nn.ReLU(), adapted[4])
    with torch.no_grad():
        diff = (merged(Xh[va]) - adapted(Xh[va])).abs().max()
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} merge_diff={float(diff):.1e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
