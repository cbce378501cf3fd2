"""Healthy: fine-tuning a tiny Transformer encoder that reads an 8x8 digit as 8 row tokens. The encoder is first
pretrained on digits 0-4 (plain loop, 3 epochs), then fine-tuned on all ten digits with a new head and layer-wise
learning-rate decay: the head gets the base LR, each encoder layer below it 0.6x the one above, and the embeddings
(row projection, CLS token, positional embedding) the lowest rate; every parameter is in exactly one group, with no
weight decay on biases, LayerNorms and the CLS/positional embeddings. Linear warm-up then cosine, stepped per step.
An EMA copy of the model (`torch.optim.swa_utils.AveragedModel` with `get_ema_multi_avg_fn(0.98)`, frozen, updated
after each optimizer step) is what validation evaluates. Own metric: EMA val acc 0.894 / val loss 0.392 after 8
short epochs."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"


class RowTransformer(nn.Module):
    def __init__(self, d_model=32, n_layers=3, n_classes=10):
        super().__init__()
        self.row_proj = nn.Linear(8, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.randn(1, 9, d_model) * 0.02)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=64, dropout=0.1, batch_first=True,
                                       norm_first=True) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x):
        h = self.row_proj(x.view(-1, 8, 8))
        h = torch.cat([self.cls.expand(h.size(0), -1, -1), h], dim=1) + self.pos
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h[:, 0]))


def pretrain(model, x, y, epochs=3):
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model


class LLRDFineTuner(L.LightningModule):
    def __init__(self, model, lr=2e-3, decay=0.6, weight_decay=0.05, warmup_frac=0.1):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.98))
        self.ema.requires_grad_(False)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.ema(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def _groups(self, modules, lr):
        decay, no_decay = [], []
        for module in modules:
            for p in module.parameters():
                (no_decay if p.ndim <= 1 else decay).append(p)
        return [{"params": decay, "lr": lr, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0}]

    def configure_optimizers(self):
        m, lr, d = self.model, self.hparams.lr, self.hparams.decay
        n = len(m.layers)
        groups = self._groups([m.head, m.norm], lr)
        for i, layer in enumerate(m.layers):
            groups += self._groups([layer], lr * d ** (n - i))
        emb = nn.ModuleDict({"row_proj": m.row_proj})
        groups += self._groups([emb], lr * d ** (n + 1))
        groups.append({"params": [m.cls, m.pos], "lr": lr * d ** (n + 1), "weight_decay": 0.0})
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(self.hparams.warmup_frac * total))

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4127)
    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=4, stratify=y)
    mean, std = X_tr.mean(0), X_tr.std(0) + 1.0
    X_tr = torch.tensor((X_tr - mean) / std, dtype=torch.float32)
    X_va = torch.tensor((X_va - mean) / std, dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    model = pretrain(RowTransformer(n_classes=5), X_tr[y_tr < 5], y_tr[y_tr < 5])
    model.head = nn.Linear(32, 10)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LLRDFineTuner(model), DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM ema_val_acc={m['val_acc'].item():.3f} ema_val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
