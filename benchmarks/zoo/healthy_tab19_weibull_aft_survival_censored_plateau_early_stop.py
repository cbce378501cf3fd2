"""Healthy: parametric survival model (Weibull accelerated failure time) for time to equipment failure with right
censoring. An MLP maps 10 standardised covariates to the log-scale of a Weibull; the shape is one learnable scalar
(softplus). The loss is the censored negative log-likelihood: log-density for observed failures, log-survival for
units still running at the end of follow-up (~40 % censored). The output bias starts at the log of the median
observed time so the first loss is sensible. AdamW, ReduceLROnPlateau on val NLL, early stopping, Harrell's
concordance index on the validation split. Final: val C-index 0.780 (the true risk score gives 0.795), learned
shape 1.53 (true 1.6), early-stopped after 32 epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"


def simulate_failures(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    log_scale = 4.0 - 0.6 * x[:, 0] + 0.4 * x[:, 1] - 0.5 * torch.tanh(2 * x[:, 2]) + 0.3 * x[:, 3] * x[:, 4]
    shape = 1.6
    u = torch.rand(n, generator=g).clamp(1e-6, 1 - 1e-6)
    t_fail = torch.exp(log_scale) * (-torch.log(u)) ** (1 / shape)
    t_cens = 150 * torch.rand(n, generator=g)
    time = torch.minimum(t_fail, t_cens)
    event = (t_fail <= t_cens).float()
    return x, time, event, log_scale


def concordance(risk, time, event):
    """Harrell's C: among comparable pairs (i failed before j's time), share where i has the higher risk."""
    comparable = (time.unsqueeze(1) < time.unsqueeze(0)) & (event.unsqueeze(1) == 1)
    higher = (risk.unsqueeze(1) > risk.unsqueeze(0)).float() + 0.5 * (risk.unsqueeze(1) == risk.unsqueeze(0)).float()
    return float((higher * comparable).sum() / comparable.sum())


class WeibullAFT(L.LightningModule):
    def __init__(self, init_log_scale, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, init_log_scale)
        self.raw_shape = nn.Parameter(torch.tensor(0.5413))   # softplus -> 1.0 (exponential) at the start

    def forward(self, x):
        return self.net(x).squeeze(-1)                           # log-scale (longer = safer)

    def nll(self, log_scale, time, event):
        k = F.softplus(self.raw_shape)
        z = k * (torch.log(time) - log_scale)                    # log (t / lambda)^k
        log_surv = -torch.exp(z)
        log_hazard = torch.log(k) - log_scale + (k - 1) * (torch.log(time) - log_scale)
        return -(event * log_hazard + log_surv).mean()

    def training_step(self, batch, batch_idx):
        x, time, event = batch
        loss = self.nll(self(x), time, event)
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def on_validation_epoch_start(self):
        self._buf = []

    def validation_step(self, batch, batch_idx):
        x, time, event = batch
        log_scale = self(x)
        self.log("val_nll", self.nll(log_scale, time, event), prog_bar=True)
        self._buf.append((log_scale, time, event))

    def on_validation_epoch_end(self):
        log_scale, time, event = (torch.cat(t) for t in zip(*self._buf))
        self.log("val_cindex", concordance(-log_scale, time, event))
        self.log("weibull_shape", F.softplus(self.raw_shape).detach())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_nll"}}


def main():
    L.seed_everything(2019)
    x, time, event, true_log_scale = simulate_failures(3000, seed=4)
    n_tr = 2400
    mean, std = x[:n_tr].mean(0), x[:n_tr].std(0)
    x = (x - mean) / std
    train = TensorDataset(x[:n_tr], time[:n_tr], event[:n_tr])
    val = TensorDataset(x[n_tr:], time[n_tr:], event[n_tr:])
    init = float(torch.log(time[:n_tr].median()))
    model = WeibullAFT(init_log_scale=init)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks() + [EarlyStopping("val_nll", patience=6)])
    trainer.fit(model, DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=1024))
    m = trainer.callback_metrics
    oracle = concordance(-true_log_scale[n_tr:], time[n_tr:], event[n_tr:])
    print(f"SYMPTOM val_cindex={float(m['val_cindex']):.3f} oracle_cindex={oracle:.3f} val_nll={float(m['val_nll']):.3f} "
          f"shape={float(m['weibull_shape']):.2f} censored={1 - float(event.mean()):.2f} epochs={trainer.current_epoch}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
