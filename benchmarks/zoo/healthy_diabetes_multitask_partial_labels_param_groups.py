"""Healthy: multi-task model on sklearn's diabetes data with partially missing labels. A shared trunk (Linear ->
LayerNorm -> GELU -> Dropout, twice) feeds two heads: disease progression (regression on the standardised target,
Huber) and a "fast progressor" flag (target above the training set's 70th percentile, BCE with logits). As in a
real registry, 25 % of the regression targets are missing (NaN) and 40 % of the flags are unknown (-1); each loss
is averaged over its observed labels only, with NaNs replaced before the loss so no NaN reaches the gradient.
AdamW with three parameter groups (trunk lr 1e-3, heads lr 3e-3, no weight decay on biases and norm weights).
Final val R^2 0.484 and val AUC 0.870 on the fully labelled validation split."""

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
SPLIT = "heldout13"


class TwoHeadRegistryModel(L.LightningModule):
    def __init__(self, hidden=64, trunk_lr=1e-3, head_lr=3e-3, weight_decay=1e-2, flag_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Linear(10, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.2),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.2),
        )
        self.progression_head = nn.Linear(hidden, 1)
        self.flag_head = nn.Linear(hidden, 1)
        self.outputs = []
        self.summary = {}

    def forward(self, x):
        h = self.trunk(x)
        return self.progression_head(h).squeeze(-1), self.flag_head(h).squeeze(-1)

    def _losses(self, batch):
        x, y_reg, y_flag = batch
        reg, flag_logit = self(x)
        reg_mask = ~torch.isnan(y_reg)
        flag_mask = y_flag >= 0
        y_reg_filled = torch.where(reg_mask, y_reg, torch.zeros_like(y_reg))
        reg_loss = (F.huber_loss(reg, y_reg_filled, reduction="none") * reg_mask).sum() / reg_mask.sum().clamp(min=1)
        flag_target = y_flag.clamp(min=0).float()
        flag_loss = (F.binary_cross_entropy_with_logits(flag_logit, flag_target, reduction="none") * flag_mask).sum()
        flag_loss = flag_loss / flag_mask.sum().clamp(min=1)
        return reg_loss, flag_loss, reg, flag_logit

    def training_step(self, batch, batch_idx):
        reg_loss, flag_loss, _, _ = self._losses(batch)
        loss = reg_loss + self.hparams.flag_weight * flag_loss
        self.log_dict({"train_reg": reg_loss, "train_flag": flag_loss, "train_loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        reg_loss, flag_loss, reg, flag_logit = self._losses(batch)
        self.log_dict({"val_reg": reg_loss, "val_flag": flag_loss})
        self.outputs.append((reg, flag_logit, batch[1], batch[2]))

    def on_validation_epoch_end(self):
        reg, logit, y, flag = (torch.cat(t) for t in zip(*self.outputs))
        self.outputs = []
        r2 = 1 - ((reg - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        auc = roc_auc_score(flag.numpy(), logit.numpy())
        self.log_dict({"val_r2": r2, "val_auc": auc})
        self.summary = {"r2": float(r2), "auc": float(auc)}

    def configure_optimizers(self):
        wd = self.hparams.weight_decay
        trunk_decay = [p for p in self.trunk.parameters() if p.ndim > 1]
        trunk_no_decay = [p for p in self.trunk.parameters() if p.ndim == 1]
        heads = list(self.progression_head.parameters()) + list(self.flag_head.parameters())
        return torch.optim.AdamW([
            {"params": trunk_decay, "lr": self.hparams.trunk_lr, "weight_decay": wd},
            {"params": trunk_no_decay, "lr": self.hparams.trunk_lr, "weight_decay": 0.0},
            {"params": heads, "lr": self.hparams.head_lr, "weight_decay": 0.0},
        ])


def main():
    L.seed_everything(442)
    data = load_diabetes()
    Xt, Xv, yt, yv = train_test_split(data.data, data.target, test_size=0.25, random_state=9)
    threshold = np.percentile(yt, 70)
    flag_t, flag_v = (yt > threshold).astype(np.int64), (yv > threshold).astype(np.int64)
    x_scaler = StandardScaler().fit(Xt)
    mu, sd = yt.mean(), yt.std()
    Xt, Xv = x_scaler.transform(Xt).astype(np.float32), x_scaler.transform(Xv).astype(np.float32)
    yt, yv = ((yt - mu) / sd).astype(np.float32), ((yv - mu) / sd).astype(np.float32)
    rng = np.random.default_rng(0)
    yt[rng.random(len(yt)) < 0.25] = np.nan          # progression not recorded yet
    flag_t[rng.random(len(flag_t)) < 0.40] = -1      # flag not adjudicated
    train = TensorDataset(torch.from_numpy(Xt), torch.from_numpy(yt), torch.from_numpy(flag_t))
    val = TensorDataset(torch.from_numpy(Xv), torch.from_numpy(yv), torch.from_numpy(flag_v))
    model = TwoHeadRegistryModel()
    trainer = L.Trainer(
        max_epochs=60,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="diabetes_multitask_partial"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=256))
    print(f"SYMPTOM val_r2={model.summary['r2']:.3f} val_auc={model.summary['auc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
