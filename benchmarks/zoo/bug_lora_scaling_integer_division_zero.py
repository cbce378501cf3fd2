"""Bug: LoRA adapters whose scaling is computed with integer division, `self.scaling = lora_alpha // r`. With
`lora_alpha=8` and `r=16` (alpha below the rank, a common choice) the scaling is 0: the adapters' output is
multiplied by zero, so `lora_A` and `lora_B` get exactly zero gradients and never move; only the new head learns, on
frozen features pre-trained for other classes. Symptom: val acc 0.53 on digits 5-9 vs 0.95 with `alpha / r`.

Set-up as `peft`/`loralib` do it: a small CNN pre-trained (plain torch loop) on digits 0-4, frozen (BatchNorm in
eval mode), every `nn.Linear` of its MLP trunk wrapped in a `LoRALinear` (rank 16, `lora_A` kaiming-uniform,
`lora_B` zeros, dropout 0.1 on the adapter input), a new 5-way head for digits 5-9; AdamW over the trainable
parameters, linear warm-up then linear decay per step."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout6"


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r=16, lora_alpha=8, lora_dropout=0.1):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(lora_dropout)
        self.scaling = lora_alpha // r

    def forward(self, x):
        return self.base(x) + (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(),
        nn.Linear(32 * 16, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())


def pretrain(backbone, x, y, steps=150):
    model = nn.Sequential(backbone, nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return backbone


def inject_lora(backbone):
    for i, m in enumerate(backbone):
        if isinstance(m, nn.Linear):
            backbone[i] = LoRALinear(m)
    return backbone


class LoRAClassifier(L.LightningModule):
    def __init__(self, backbone, total_steps, warmup=20):
        super().__init__()
        self.backbone = inject_lora(backbone)
        for name, p in self.backbone.named_parameters():
            p.requires_grad = "lora_" in name
        self.head = nn.Linear(64, 5)
        self.total_steps, self.warmup = total_steps, warmup

    def on_train_epoch_start(self):
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()

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
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)

        def lr_lambda(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return max(0.0, (self.total_steps - step) / (self.total_steps - self.warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(63)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    old, new = y < 5, y >= 5
    backbone = pretrain(make_backbone(), x[old], y[old])
    xn, yn = x[new], y[new] - 5
    i_tr, i_va = train_test_split(torch.arange(len(yn)), test_size=0.3, random_state=63, stratify=yn)
    epochs, batch_size = 10, 32
    total_steps = epochs * math.ceil(len(i_tr) / batch_size)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LoRAClassifier(backbone, total_steps),
                DataLoader(TensorDataset(xn[i_tr], yn[i_tr]), batch_size=batch_size, shuffle=True),
                DataLoader(TensorDataset(xn[i_va], yn[i_va]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
