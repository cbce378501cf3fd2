"""Healthy: multi-task model on the diabetes data with one validation dataloader per patient subgroup. Task 1
regresses the one-year disease progression (standardised with the training targets' mean/std, MSE); task 2
classifies "high risk" = progression above the training set's 75th percentile (a label derived from the target, used
only as a target), with BCE-with-logits and `pos_weight` = negatives/positives of the training labels to balance the
25% positive rate. Total loss = MSE + 0.5 * BCE. Features standardised with a scaler fitted on the training rows
(the sklearn copy is centred with unit L2 norm per column, i.e. values ~0.05). Shared trunk with two heads.
Validation has two dataloaders (the two values of the `sex` column) so that per-group RMSE and AUROC (torchmetrics,
one metric object per dataloader) are logged separately; the monitor is the mean of the two. AdamW with weight
decay, 20 epochs (the combined val loss has plateaued by then). Correct throughout. Own metric: standardised val
RMSE 0.763 / 0.618, AUROC 0.862 / 0.812 (group a / b)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryAUROC

import lightning_sanity

EXPECT = None
SPLIT = "heldout28"

GROUPS = ("sex_a", "sex_b")


class ProgressionRiskNet(L.LightningModule):
    def __init__(self, pos_weight, lr=1e-3, risk_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU())
        self.progression_head = nn.Linear(32, 1)
        self.risk_head = nn.Linear(32, 1)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))
        self.auroc = nn.ModuleList([BinaryAUROC() for _ in GROUPS])

    def forward(self, x):
        h = self.trunk(x)
        return self.progression_head(h).squeeze(-1), self.risk_head(h).squeeze(-1)

    def _losses(self, batch):
        x, y_reg, y_risk = batch
        pred, risk_logit = self(x)
        mse = F.mse_loss(pred, y_reg)
        bce = F.binary_cross_entropy_with_logits(risk_logit, y_risk, pos_weight=self.pos_weight)
        return mse, bce, risk_logit

    def training_step(self, batch, batch_idx):
        mse, bce, _ = self._losses(batch)
        loss = mse + self.hparams.risk_weight * bce
        self.log_dict({"train_loss": loss, "train_mse": mse, "train_bce": bce}, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        mse, bce, risk_logit = self._losses(batch)
        group = GROUPS[dataloader_idx]
        self.auroc[dataloader_idx].update(risk_logit, batch[2].long())
        self.log(f"val_rmse_{group}", mse.sqrt(), add_dataloader_idx=False)
        self.log(f"val_auroc_{group}", self.auroc[dataloader_idx], add_dataloader_idx=False)
        self.log(f"val_loss_{group}", mse + self.hparams.risk_weight * bce, add_dataloader_idx=False)

    def on_validation_epoch_end(self):
        m = self.trainer.callback_metrics
        if all(f"val_loss_{g}" in m for g in GROUPS):
            self.log("val_loss", torch.stack([m[f"val_loss_{g}"] for g in GROUPS]).mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def main():
    L.seed_everything(288)
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=8)
    scaler = StandardScaler().fit(X_tr)
    mu, sd = y_tr.mean(), y_tr.std()
    cut = np.quantile(y_tr, 0.75)

    def ds(X_, y_):
        return TensorDataset(torch.tensor(scaler.transform(X_), dtype=torch.float32),
                             torch.tensor((y_ - mu) / sd, dtype=torch.float32),
                             torch.tensor(y_ > cut, dtype=torch.float32))

    sex_va = X_va[:, 1] > 0
    val_dls = [DataLoader(ds(X_va[~sex_va], y_va[~sex_va]), batch_size=128),
               DataLoader(ds(X_va[sex_va], y_va[sex_va]), batch_size=128)]
    train_dl = DataLoader(ds(X_tr, y_tr), batch_size=32, shuffle=True)
    n_pos = float((y_tr > cut).sum())
    model = ProgressionRiskNet(pos_weight=(len(y_tr) - n_pos) / n_pos)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dls)
    m = trainer.callback_metrics
    print("SYMPTOM " + " ".join(f"{k}={m[k].item():.3f}" for g in GROUPS for k in (f"val_rmse_{g}", f"val_auroc_{g}")))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
