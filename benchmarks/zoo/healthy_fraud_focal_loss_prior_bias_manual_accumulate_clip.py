"""Healthy: transaction-fraud detection on a heavily imbalanced synthetic table (16 features, about 2 % positives
given by a nonlinear rule). An MLP whose output bias is initialised to the prior log-odds log(p / (1 - p)) (so the
first loss is already the prior's, not ln 2), trained with the sigmoid focal loss (alpha 0.25, gamma 2) under
manual optimisation: the loss is divided by 4 and gradients are accumulated over 4 batches of 64 before
`clip_gradients` (norm 1.0), `opt.step()` and a per-step cosine schedule. Validation reports average precision
and ROC AUC on a separate draw. Final val AP 0.674 (the 0.019 prevalence is the chance level) and ROC AUC 0.985."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"
ACCUMULATE = 4


def make_transactions(n, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 16, generator=g)
    score = 1.6 * X[:, 0] + 1.2 * X[:, 1] * X[:, 2] + torch.relu(X[:, 3]) * 1.5 - 0.8 * X[:, 4] ** 2 + X[:, 5]
    p = torch.sigmoid(2.0 * (score - 5.5))
    y = (torch.rand(n, generator=g) < p).float()
    return X, y


def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


class FraudMLP(L.LightningModule):
    def __init__(self, prior, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 64), nn.ReLU(),
                                 nn.Linear(64, 1))
        nn.init.constant_(self.net[-1].bias, math.log(prior / (1 - prior)))
        self.outputs = []
        self.summary = {}

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        sched = self.lr_schedulers()
        loss = sigmoid_focal_loss(self(x), y)
        self.manual_backward(loss / ACCUMULATE)
        if (batch_idx + 1) % ACCUMULATE == 0:
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
            sched.step()
        self.log("train_focal", loss)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_focal", sigmoid_focal_loss(logits, y))
        self.outputs.append((logits.sigmoid(), y))

    def on_validation_epoch_end(self):
        p, y = (torch.cat(t).numpy() for t in zip(*self.outputs))
        self.outputs = []
        ap, auc = average_precision_score(y, p), roc_auc_score(y, p)
        self.log_dict({"val_ap": ap, "val_auc": auc})
        self.summary = {"ap": ap, "auc": auc}

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        steps = self.trainer.estimated_stepping_batches // ACCUMULATE  # one optimizer step per ACCUMULATE batches
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return [opt], [sched]


def main():
    L.seed_everything(99)
    Xt, yt = make_transactions(30000, seed=1)
    Xv, yv = make_transactions(10000, seed=2)
    prior = float(yt.mean())
    train_loader = DataLoader(TensorDataset(Xt, yt), batch_size=64, shuffle=True)
    model = FraudMLP(prior=prior)
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="fraud_focal_manual"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, DataLoader(TensorDataset(Xv, yv), batch_size=2048))
    print(f"SYMPTOM train_prevalence={prior:.4f} val_prevalence={float(yv.mean()):.4f} "
          f"val_ap={model.summary['ap']:.3f} val_auc={model.summary['auc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
