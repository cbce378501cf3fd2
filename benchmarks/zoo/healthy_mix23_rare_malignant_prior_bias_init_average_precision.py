"""Healthy: a rare-positive screening classifier on breast cancer (sklearn `load_breast_cancer`, 30 features). To mimic
a screening population, the malignant class (here relabelled as the positive, y = 1) is subsampled to 40 of its 212
rows, so positives are ~10 % of the 397 rows. Stratified 75/25 split; a StandardScaler fitted on the train rows
only; a 2-layer MLP trained with plain `BCEWithLogitsLoss`; the output bias is initialised to log(p / (1 - p)) of
the TRAIN prior p (the RetinaNet / "init well" recipe) so the first loss already equals the entropy of the label
prior instead of ln 2; Adam with ReduceLROnPlateau on the validation loss; the model is judged by average precision,
which is threshold-free.

Why it is correct: nothing is resampled across the split; scaling statistics and the prior come from the training
split; every batch of 32 holds ~3 positives (shuffled, not sorted); validation reports the same loss and the average
precision, the honest metric for a rare class. Result: val average precision 1.000 on the 10 held-out positives
(recall 0.80 at the default 0.5 threshold)."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"


class ScreeningMLP(L.LightningModule):
    def __init__(self, prior, hidden=32, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, float(np.log(prior / (1 - prior))))
        self.loss_fn = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss_fn(logits, y))
        self.log("val_ap", float(average_precision_score(y.numpy(), logits.numpy())))
        self.log("val_recall", ((logits > 0) & (y == 1)).sum() / (y == 1).sum())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=5)
        return [opt], [{"scheduler": sched, "monitor": "val_loss"}]


def main():
    L.seed_everything(2308)
    ds = load_breast_cancer()
    y_all = 1 - ds.target
    rng = np.random.default_rng(11)
    keep = np.concatenate([np.flatnonzero(y_all == 0), rng.choice(np.flatnonzero(y_all == 1), 40, replace=False)])
    X, y = ds.data[keep], y_all[keep].astype(np.float32)
    x_tr, x_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=5, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (x_tr, x_va))
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    n_pos = float(y_tr.sum())
    model = ScreeningMLP(prior=n_pos / len(y_tr))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=128))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_ap={float(m['val_ap']):.3f} val_recall={float(m['val_recall']):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
