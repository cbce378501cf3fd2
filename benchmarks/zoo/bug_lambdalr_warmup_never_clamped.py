"""Bug: a hand-written warm-up `LambdaLR(opt, lambda step: step / warmup_steps)` stepped per batch, with no clamp at
1: after the 20-step "warm-up" the learning rate keeps growing linearly, to 25x the base rate by the end of the run.
Residual tabular MLP (LayerNorm, GELU) on a synthetic 4-class problem (10 standard-normal features, the class is the
argmax of a random two-layer tanh network's scores; a seeded torch.Generator), AdamW. Val acc 0.819 / val loss 0.511
vs 0.842 / 0.395 with `min(1.0, (step + 1) / warmup)`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule", "loss-trend"}
SPLIT = "heldout2"


def make_data(n, w1, w2, gen):
    x = torch.randn(n, 10, generator=gen)
    return x, (torch.tanh(x @ w1) @ w2).argmax(1)


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        return x + self.ff(self.norm(x))


class TabularResNet(L.LightningModule):
    def __init__(self, width=64, lr=3e-3, warmup_steps=20):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, width), ResidualBlock(width), ResidualBlock(width),
                                 nn.LayerNorm(width), nn.Linear(width, 4))

    def forward(self, x):
        return self.net(x)

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
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warmup = self.hparams.warmup_steps

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / warmup)  # BUG: never clamped at 1
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(17)
    gen = torch.Generator().manual_seed(17)
    w1, w2 = torch.randn(10, 16, generator=gen), torch.randn(16, 4, generator=gen)
    x_tr, y_tr = make_data(4000, w1, w2, gen)
    x_va, y_va = make_data(1000, w1, w2, gen)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TabularResNet(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=500))
    m = trainer.callback_metrics
    majority = y_va.bincount().max().item() / len(y_va)
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f} majority={majority:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
