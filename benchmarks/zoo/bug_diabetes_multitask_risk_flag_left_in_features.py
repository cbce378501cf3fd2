"""Bug: a two-head tabular MLP on the scikit-learn diabetes table. One head regresses the (standardised) one-year
disease progression, the other classifies a `high_risk` flag (progression above 180) that the clinic uses for
triage. The user builds one table with named columns (10 features, `progression`, `high_risk`), standardises it
with a scaler fitted on the training rows, and picks the inputs with
`feature_cols = [c for c in COLUMNS if c != TARGET]` - written when the table had only the regression target. The
`high_risk` column added later for the second head stays among the inputs: the classification head reads its own
label and the regression head gets a near-perfect hint. Validation looks excellent; at prediction time the flag
does not exist (it is computed from the outcome). Symptom: val risk acc 1.00 and val R^2 0.73 with the flag in the
inputs vs 0.79 and 0.46 with it removed; with the flag zeroed (what deployment sees) the leaky model drops to
acc 0.69 / R^2 0.38."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout10"

TARGET = "progression"
RISK = "high_risk"
RISK_THRESHOLD = 180.0


def build_table():
    data = load_diabetes()
    columns = list(data.feature_names) + [TARGET, RISK]
    risk = (data.target > RISK_THRESHOLD).astype(np.float64)
    table = np.column_stack([data.data, data.target, risk])
    return table, columns


class TwoHeadMLP(L.LightningModule):
    def __init__(self, n_features, lr=3e-3, risk_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(64, 64), nn.ReLU(),
        )
        self.progression_head = nn.Linear(64, 1)
        self.risk_head = nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.progression_head(h).squeeze(-1), self.risk_head(h).squeeze(-1)

    def _losses(self, batch):
        x, y_reg, y_risk = batch
        pred_reg, risk_logit = self(x)
        mse = F.mse_loss(pred_reg, y_reg)
        bce = F.binary_cross_entropy_with_logits(risk_logit, y_risk)
        return mse, bce, pred_reg, risk_logit

    def training_step(self, batch, batch_idx):
        mse, bce, _, _ = self._losses(batch)
        loss = mse + self.hparams.risk_weight * bce
        self.log_dict({"train/mse": mse, "train/bce": bce, "train/loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        mse, bce, _, risk_logit = self._losses(batch)
        acc = ((risk_logit > 0).float() == batch[2]).float().mean()
        self.log_dict({"val/mse": mse, "val/bce": bce, "val/risk_acc": acc}, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def evaluate(model, x, y_reg, y_risk):
    model.eval()
    with torch.no_grad():
        pred, logit = model(x)
    r2 = 1 - ((pred - y_reg) ** 2).sum() / ((y_reg - y_reg.mean()) ** 2).sum()
    acc = ((logit > 0).float() == y_risk).float().mean()
    return float(r2), float(acc)


def main():
    L.seed_everything(1310)
    table, columns = build_table()
    train_rows, val_rows = train_test_split(table, test_size=0.25, random_state=7, stratify=table[:, -1])

    feature_cols = [c for c in columns if c != TARGET]
    feat_idx = [columns.index(c) for c in feature_cols]
    target_idx = columns.index(TARGET)
    risk_idx = columns.index(RISK)

    scaler = StandardScaler().fit(train_rows[:, feat_idx])
    y_mean, y_std = train_rows[:, target_idx].mean(), train_rows[:, target_idx].std()

    def tensors(rows):
        x = torch.tensor(scaler.transform(rows[:, feat_idx]), dtype=torch.float32)
        y_reg = torch.tensor((rows[:, target_idx] - y_mean) / y_std, dtype=torch.float32)
        y_risk = torch.tensor(rows[:, risk_idx], dtype=torch.float32)
        return x, y_reg, y_risk

    train_t, val_t = tensors(train_rows), tensors(val_rows)
    train_loader = DataLoader(TensorDataset(*train_t), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(*val_t), batch_size=128)

    model = TwoHeadMLP(n_features=len(feat_idx))
    trainer = L.Trainer(
        max_epochs=40,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="diabetes_multitask_risk"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)

    r2, acc = evaluate(model, *val_t)
    print(f"SYMPTOM val_r2={r2:.3f} val_risk_acc={acc:.3f}")
    if RISK in feature_cols:
        x_deploy = val_t[0].clone()
        x_deploy[:, feature_cols.index(RISK)] = 0.0
        r2_d, acc_d = evaluate(model, x_deploy, val_t[1], val_t[2])
        print(f"SYMPTOM deployment (flag unknown, zeroed) r2={r2_d:.3f} risk_acc={acc_d:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
