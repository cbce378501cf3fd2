"""Bug: an imbalanced sepsis-risk score from synthetic EHR vitals/labs (12 standardised features, the risk rule is
a logistic function of a few features and one interaction, prevalence ~20%). The model ends in `nn.Sigmoid()` so
that `model(x)` returns calibrated-looking risks for the dashboard, and the imbalance is handled with
`F.binary_cross_entropy_with_logits(..., pos_weight=n_neg/n_pos)`. The loss therefore receives probabilities
where it expects logits: it applies a second sigmoid, so the effective prediction lives in [0.5, 0.73], the
gradient is squashed, and the loss can never get close to zero. The loss still decreases and the ranking
(AUROC) is unchanged, so it looks like a hard task; only the risks are worse. Measured (same seed, 15 epochs):
val Brier 0.130 / AUROC 0.910 with the bug vs Brier 0.113 / AUROC 0.911 with the sigmoid removed from the head
(and applied only when reporting risks)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout28"


def make_cohort(n=3000, d=12, seed=31):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    logit = 1.8 * x[:, 0] - 1.2 * x[:, 1] + 1.0 * x[:, 2] * x[:, 3] + 0.8 * x[:, 4] - 2.6
    y = (torch.rand(n, generator=g) < torch.sigmoid(logit)).float()
    return x, y


def auroc(scores, y):
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return ((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


class RiskMLP(L.LightningModule):
    def __init__(self, pos_weight, d=12, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1), nn.Sigmoid())
        self.val_out = []

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        pw = torch.tensor(self.hparams.pos_weight, device=x.device)
        loss = F.binary_cross_entropy_with_logits(self(x), y, pos_weight=pw)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        probs = self(x)
        self.log("val_bce", F.binary_cross_entropy(probs, y))
        self.val_out.append((probs, y))

    def on_validation_epoch_end(self):
        p = torch.cat([a for a, _ in self.val_out])
        y = torch.cat([b for _, b in self.val_out])
        self.val_out.clear()
        self.log("val_brier", ((p - y) ** 2).mean())
        self.log("val_auroc", auroc(p, y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(19)
    x, y = make_cohort()
    x_tr, y_tr, x_va, y_va = x[:2400], y[:2400], x[2400:], y[2400:]
    pos_weight = float((y_tr == 0).sum() / (y_tr == 1).sum())
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=600)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RiskMLP(pos_weight), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_brier={m['val_brier'].item():.3f} val_auroc={m['val_auroc'].item():.3f} "
          f"prevalence={y_va.mean().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
