"""Bug: the standard deviation is passed to the Gaussian NLL where it expects the variance (`F.gaussian_nll_loss(mean,
y, std)`, the `** 2` forgotten). The loss is still minimised, but what the "std" head learns is a variance, so every
interval built from it (and the likelihood the script reports) is wrong: too narrow wherever the noise standard
deviation is below 1 (everywhere here), too wide above. Otherwise the same script as the healthy twin:
heteroscedastic regression on synthetic sensor data (4 features; target sin(x0) + 0.5 x1 with noise whose standard
deviation grows with |x2|, a seeded torch.Generator). An MLP trunk with a mean head and a standard-deviation head
(softplus + 1e-3), `F.gaussian_nll_loss(mean, y, std ** 2)`, AdamW, SequentialLR (LinearLR warm-up over the first
epoch, then CosineAnnealingLR per step) and `gradient_clip_val=1.0`. Own metric: val Gaussian NLL 0.69 with 90 %
intervals covering 0.88 of the targets (a constant mean/variance gives NLL 1.49). Measured: val NLL 3.13 and 90 %
coverage 0.57 vs 0.69 / 0.88 fixed."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout3"


def make_readings(n, gen):
    x = torch.rand(n, 4, generator=gen) * 4 - 2
    noise_std = 0.1 + 0.4 * x[:, 2].abs()
    y = torch.sin(1.5 * x[:, 0]) + 0.5 * x[:, 1] + noise_std * torch.randn(n, generator=gen)
    return x, y


class HeteroscedasticMLP(L.LightningModule):
    def __init__(self, lr=3e-3, epochs=15, steps_per_epoch=47):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(4, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU())
        self.mean_head = nn.Linear(64, 1)
        self.std_head = nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.mean_head(h).squeeze(-1), F.softplus(self.std_head(h)).squeeze(-1) + 1e-3

    def nll(self, batch):
        x, y = batch
        mean, std = self(x)
        # BUG: gaussian_nll_loss takes the variance, not the standard deviation
        return F.gaussian_nll_loss(mean, y, std), mean, std, y

    def training_step(self, batch, batch_idx):
        loss, *_ = self.nll(batch)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        _, mean, std, y = self.nll(batch)
        var = std ** 2
        full_nll = 0.5 * (torch.log(var) + (y - mean) ** 2 / var + math.log(2 * math.pi))
        self.log("val_nll", full_nll.mean())
        self.log("val_cover90", ((y - mean).abs() <= 1.645 * var.sqrt()).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        spe = self.hparams.steps_per_epoch
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=spe)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spe * (self.hparams.epochs - 1))
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[spe])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(11)
    gen = torch.Generator().manual_seed(11)
    x_tr, y_tr = make_readings(3000, gen)
    x_va, y_va = make_readings(800, gen)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    model = HeteroscedasticMLP(epochs=15, steps_per_epoch=len(train))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    const = 0.5 * (math.log(y_tr.var().item()) + 1 + math.log(2 * math.pi))
    m = trainer.callback_metrics
    print(f"val_nll={m['val_nll'].item():.3f} val_cover90={m['val_cover90'].item():.3f} constant_nll={const:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
