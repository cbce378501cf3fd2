"""Healthy: a conv trunk with BatchNorm on the 8x8 digits feeding a Switch-style mixture-of-experts head: 6 expert
MLPs, a linear router with top-1 routing (the chosen expert's output scaled by its router probability, so the router
gets a gradient), router noise during training only, and the Switch load-balancing loss (weight 0.01) so the
experts share the tokens. In any one batch an expert may receive few or no samples. Adam with ReduceLROnPlateau on
val loss. Final val acc 0.98 (val loss 0.04); the router ends up using 2 of the 6 experts."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"


class SwitchHead(nn.Module):
    def __init__(self, d_in, d_hidden, d_out, n_experts=6, noise=0.1):
        super().__init__()
        self.router = nn.Linear(d_in, n_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out)) for _ in range(n_experts)
        )
        self.noise = noise
        self.d_out = d_out

    def forward(self, h):
        logits = self.router(h)
        if self.training:
            logits = logits + self.noise * torch.randn_like(logits)
        probs = logits.softmax(-1)
        gate, choice = probs.max(-1)
        out = h.new_zeros(h.shape[0], self.d_out)
        for i, expert in enumerate(self.experts):
            sel = choice == i
            if sel.any():
                out[sel] = gate[sel, None] * expert(h[sel])
        n = len(self.experts)
        frac_tokens = F.one_hot(choice, n).float().mean(0)
        frac_probs = probs.mean(0)
        balance = n * (frac_tokens * frac_probs).sum()
        return out, balance, choice


class MoEDigits(L.LightningModule):
    def __init__(self, lr=2e-3, balance_weight=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 64), nn.ReLU(),
        )
        self.head = SwitchHead(64, 64, 10)

    def forward(self, x):
        return self.head(self.trunk(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, balance, _ = self(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + self.hparams.balance_weight * balance
        self.log_dict({"train/ce": ce, "train/balance": balance, "train/loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits, _, choice = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)
        self.log("val/experts_used", float(choice.unique().numel()))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss"}}


def main():
    L.seed_everything(606)
    digits = load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    ds = TensorDataset(x, torch.tensor(digits.target))
    train_ds, val_ds = random_split(ds, [1437, 360], generator=torch.Generator().manual_seed(10))
    model = MoEDigits()
    trainer = L.Trainer(
        max_epochs=12,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="moe_digits"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=360))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val/acc']):.3f} val_loss={float(m['val/loss']):.3f} "
          f"experts_used={int(m['val/experts_used'])}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
