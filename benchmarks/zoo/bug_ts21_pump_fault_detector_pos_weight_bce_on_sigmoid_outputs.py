"""Bug: a fault detector for industrial pumps on tabular telemetry (synthetic, seeded torch.Generator): eight
standardized sensor summaries (bearing temperature, vibration RMS and kurtosis, motor current, suction and discharge
pressure, flow, speed) and a fault label that fires when a nonlinear combination of vibration, temperature and a
pressure/flow mismatch crosses a threshold, about 7.5 % positives. The imbalance is handled the usual way with
`BCEWithLogitsLoss(pos_weight=n_neg / n_pos)` computed on the training split; MLP, AdamW, cosine schedule.

The model's `forward` ends in `torch.sigmoid` because the serving code wants probabilities, and the training step
passes those probabilities to `BCEWithLogitsLoss`, which applies a second sigmoid. The effective prediction is
sigmoid(p) for p in (0, 1), i.e. squeezed into (0.5, 0.73): the loss can never get near zero, every gradient is
scaled down by the outer sigmoid's slope, and the logits are pushed to extremes to move the squashed value at all.
Training still decreases and the detector still ranks well, which is why nobody notices. Symptom: the weighted
training loss plateaus at 0.967 (its floor is ~0.5 per sample) instead of 0.156 when the loss gets the logits; val
F1 at 0.5 is 0.699 vs 0.710 and val AUC 0.984 vs 0.985, so the damage is in the objective (gradients damped by the
outer sigmoid, logits driven to saturation), not yet in the ranking."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout21"


def make_telemetry(n, g):
    x = torch.randn(n, 8, generator=g)
    temp, vib_rms, vib_kurt, current, p_in, p_out, flow = x[:, 0], x[:, 1], x[:, 2], x[:, 3], x[:, 4], x[:, 5], x[:, 6]
    mismatch = (p_out - p_in) - 0.8 * flow
    score = 1.2 * vib_rms * (vib_kurt > 0.5) + 0.8 * temp + 0.9 * mismatch.abs() + 0.3 * current
    score = score + 0.3 * torch.randn(n, generator=g)
    return x, (score > 3.3).float()


def f1_and_auc(prob, y):
    pred = prob > 0.5
    tp = (pred & (y == 1)).sum().float()
    f1 = 2 * tp / (pred.sum() + (y == 1).sum()).clamp(min=1)
    ranks = prob.argsort().argsort().float() + 1
    n_pos, n_neg = y.sum(), (1 - y).sum()
    auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return float(f1), float(auc)


class FaultDetector(L.LightningModule):
    def __init__(self, pos_weight, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def forward(self, x):
        return torch.sigmoid(self.net(x)).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        prob = self(x)
        f1, auc = f1_and_auc(prob, y)
        self.log("val_loss", self.loss_fn(prob, y))
        self.log("val_f1", f1)
        self.log("val_auc", auc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2105)
    g = torch.Generator().manual_seed(5)
    x, y = make_telemetry(8000, g)
    x_tr, y_tr, x_va, y_va = x[:6400], y[:6400], x[6400:], y[6400:]
    pos_weight = float((1 - y_tr).sum() / y_tr.sum())
    model = FaultDetector(pos_weight)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=len(y_va)))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_f1={float(m['val_f1']):.3f} val_auc={float(m['val_auc']):.3f} "
          f"train_loss={float(m['train_loss']):.3f} pos_rate={float(y_tr.mean()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
