"""Healthy: two-task MLP on sklearn diabetes (features StandardScaler'd on the training rows). Task 1 regresses the
one-year progression score (standardised with training statistics, Huber loss), but the exact score is recorded
for only ~70 % of patients: missing scores are NaN and masked out of the loss (a batch without any labelled
score contributes zero). Task 2 predicts the registry's binary "marked progression" flag (score above 200,
recorded for everyone; ~25 % positive) with BCE-with-logits and `pos_weight` = negatives / positives of the
training rows. Shared trunk with LayerNorm and dropout, two heads, loss = Huber on labelled rows + 0.5 * BCE.
AdamW with linear warm-up then cosine decay per optimizer step (LambdaLR), bf16-mixed autocast on CPU, batches of
16 accumulated over 2 steps, gradient clipping. Final val R^2 0.47 on the labelled scores, flag AUROC 0.86
(balanced accuracy 0.81)."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_diabetes
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"


class TwoTaskMLP(L.LightningModule):
    def __init__(self, pos_weight, lr=2e-3, warmup_steps=30, flag_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Linear(10, 128), nn.LayerNorm(128), nn.GELU(), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.LayerNorm(64), nn.GELU(), nn.Dropout(0.2),
        )
        self.score_head = nn.Linear(64, 1)
        self.flag_head = nn.Linear(64, 1)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))

    def forward(self, x):
        h = self.trunk(x)
        return self.score_head(h).squeeze(-1), self.flag_head(h).squeeze(-1)

    def _losses(self, batch):
        x, score, flag = batch
        score_hat, flag_logit = self(x)
        labelled = ~torch.isnan(score)
        per_row = F.huber_loss(score_hat.float(), torch.nan_to_num(score), delta=1.0, reduction="none")
        score_loss = (per_row * labelled).sum() / labelled.sum().clamp(min=1)
        flag_loss = F.binary_cross_entropy_with_logits(flag_logit.float(), flag, pos_weight=self.pos_weight)
        return score_loss, flag_loss, score_hat, flag_logit, labelled

    def training_step(self, batch, batch_idx):
        score_loss, flag_loss, *_ = self._losses(batch)
        loss = score_loss + self.hparams.flag_weight * flag_loss
        self.log_dict({"train_loss": loss, "train_huber": score_loss, "train_bce": flag_loss})
        return loss

    def validation_step(self, batch, batch_idx):
        _, score, flag = batch
        score_loss, flag_loss, score_hat, flag_logit, labelled = self._losses(batch)
        self.log_dict({"val_huber": score_loss, "val_bce": flag_loss,
                       "val_flag_acc": ((flag_logit > 0).float() == flag).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup_steps

        def schedule(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule), "interval": "step"}]


def main():
    L.seed_everything(9)
    X, y = load_diabetes(return_X_y=True)
    flag = (y > 200).astype(np.float32)
    X_tr, X_va, y_tr, y_va, f_tr, f_va = train_test_split(X, y, flag, test_size=0.2, random_state=9, stratify=flag)
    rng = np.random.default_rng(9)
    y_tr = np.where(rng.random(len(y_tr)) < 0.3, np.nan, y_tr)
    y_va = np.where(rng.random(len(y_va)) < 0.3, np.nan, y_va)

    x_scaler = StandardScaler().fit(X_tr)
    y_mu, y_sd = np.nanmean(y_tr), np.nanstd(y_tr)

    def dataset(X_, y_, f_):
        return TensorDataset(torch.tensor(x_scaler.transform(X_), dtype=torch.float32),
                             torch.tensor((y_ - y_mu) / y_sd, dtype=torch.float32),
                             torch.tensor(f_))

    pos_weight = float((1 - f_tr).sum() / f_tr.sum())
    model = TwoTaskMLP(pos_weight)
    trainer = L.Trainer(
        max_epochs=30,
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger("lightning_logs", name="diabetes_two_task"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    val_ds = dataset(X_va, y_va, f_va)
    trainer.fit(model, DataLoader(dataset(X_tr, y_tr, f_tr), batch_size=16, shuffle=True),
                DataLoader(val_ds, batch_size=128))

    model.eval()
    with torch.no_grad():
        x, score, f = val_ds.tensors
        score_hat, flag_logit = model(x)
        lab = ~torch.isnan(score)
        r2 = 1 - ((score_hat[lab] - score[lab]) ** 2).sum() / ((score[lab] - score[lab].mean()) ** 2).sum()
        pred = (flag_logit > 0).float()
        bal_acc = 0.5 * ((pred[f == 1] == 1).float().mean() + (pred[f == 0] == 0).float().mean())
    auc = roc_auc_score(f.numpy(), flag_logit.float().numpy())
    print(f"SYMPTOM epochs_run={trainer.current_epoch} val_r2={float(r2):.3f} val_flag_auroc={auc:.3f} "
          f"val_flag_balanced_acc={float(bal_acc):.3f} "
          f"predicted_pos={float(pred.mean()):.2f} true_pos={float(f.mean()):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
