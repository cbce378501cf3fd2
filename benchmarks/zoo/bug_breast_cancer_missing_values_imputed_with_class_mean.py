"""Bug (target leakage through imputation): the breast-cancer measurements arrive with gaps (40 % of the cells of the
30 measurement columns missing, as in the lab export this script simulates). The cleaning step fills each gap with
the column's mean over the rows with the same diagnosis, the "group-wise imputation" of many notebooks
(`df[c].fillna(df.groupby("diagnosis")[c].transform("mean"))`, written here with numpy), on the whole table before
the train/validation split. Each imputed cell is then one of two values, the benign or the malignant mean of its
column: with 12 gaps per row on average, the inputs spell out the label. The MLP (standardised inputs, two hidden
layers with dropout, AdamW, BCE with logits) reaches a validation accuracy no honest pipeline can. Symptom: val acc
1.000, val BCE 0.002, vs 0.965 / 0.125 when the gaps are filled with the training split's column means (the fixed
script); the leaky model scores 0.958 on the same validation rows imputed without their labels."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout9"


def load_lab_export(seed=0):
    data = load_breast_cancer()
    x = data.data.astype(np.float64)
    rng = np.random.default_rng(seed)
    x[rng.random(x.shape) < 0.4] = np.nan
    return x, data.target.astype(np.float32)


def impute_groupwise(x, y):
    out = x.copy()
    for label in np.unique(y):
        rows = y == label
        means = np.nanmean(x[rows], axis=0)
        block = out[rows]
        block[np.isnan(block)] = np.broadcast_to(means, block.shape)[np.isnan(block)]
        out[rows] = block
    return out


def impute_with_means(x, means):
    out = x.copy()
    out[np.isnan(out)] = np.broadcast_to(means, out.shape)[np.isnan(out)]
    return out


class LitMLP(L.LightningModule):
    def __init__(self, n_features):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=1e-2)


def main():
    L.seed_everything(23)
    x_raw, y = load_lab_export(seed=23)
    x = impute_groupwise(x_raw, y)
    i_tr, i_va = train_test_split(np.arange(len(y)), test_size=0.25, random_state=23, stratify=y)
    mean, std = x[i_tr].mean(0), x[i_tr].std(0)
    xs = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    model = LitMLP(x.shape[1])
    trainer.fit(model, DataLoader(TensorDataset(xs[i_tr], yt[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xs[i_va], yt[i_va]), batch_size=256))
    m = trainer.callback_metrics
    # the same validation rows imputed without their labels, as they would be at prediction time
    honest = impute_with_means(x_raw[i_va], np.nanmean(x_raw[i_tr], axis=0))
    with torch.no_grad():
        model.eval()
        logits = model(torch.tensor((honest - mean) / std, dtype=torch.float32))
    honest_acc = ((logits > 0).float() == yt[i_va]).float().mean().item()
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"acc_on_honestly_imputed_val={honest_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
