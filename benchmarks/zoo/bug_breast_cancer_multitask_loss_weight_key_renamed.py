"""Bug: multi-task tabular model on sklearn's breast_cancer. A shared MLP trunk reads 27 standardized features
(the three "worst size" columns are held out) and two heads predict the diagnosis (BCE) and the log worst-area
(MSE, standardized) - a tumour-size estimate for the report. Task losses are combined with weights from a config
dict, looked up defensively with `.get(name, 0.0)`.

The config still says `"worst_area": 0.5`, but the regression task was later renamed `"size"` in the heads'
ModuleDict. `.get("size", 0.0)` quietly gives 0.0: the size head's loss is multiplied by zero, so its parameters get
an all-zero gradient every step and it stays at its initialisation, while the diagnosis task trains normally and the
logged total loss goes down.
Symptom: val size R^2 -2.63 (diagnosis acc 0.98) vs val size R^2 0.975 (diagnosis acc 0.98) with the key fixed."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout16"
LOSS_WEIGHTS = {"diagnosis": 1.0, "worst_area": 0.5}


class MultiTaskNet(L.LightningModule):
    def __init__(self, n_features, loss_weights, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.loss_weights = loss_weights
        self.trunk = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.1),
                                   nn.Linear(64, 64), nn.ReLU())
        self.heads = nn.ModuleDict({"diagnosis": nn.Linear(64, 1), "size": nn.Linear(64, 1)})

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h).squeeze(-1) for name, head in self.heads.items()}

    def _task_losses(self, batch):
        x, malignant, size = batch
        out = self(x)
        losses = {"diagnosis": F.binary_cross_entropy_with_logits(out["diagnosis"], malignant),
                  "size": F.mse_loss(out["size"], size)}
        return out, losses

    def training_step(self, batch, batch_idx):
        _, losses = self._task_losses(batch)
        loss = sum(self.loss_weights.get(name, 0.0) * value for name, value in losses.items())
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, malignant, size = batch
        out, losses = self._task_losses(batch)
        self.log("val_diag_acc", ((out["diagnosis"] > 0).float() == malignant).float().mean())
        self.log("val_size_mse", losses["size"])
        self.log("val_size_r2", 1 - losses["size"] / size.var())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(12)
    data = load_breast_cancer()
    names = list(data.feature_names)
    size_cols = [names.index(c) for c in ("worst radius", "worst perimeter", "worst area")]
    keep = [i for i in range(len(names)) if i not in size_cols]
    X, malignant = data.data[:, keep], (data.target == 0).astype(np.float32)
    size = np.log(data.data[:, names.index("worst area")])
    Xtr, Xva, mtr, mva, str_, sva = train_test_split(X, malignant, size, test_size=0.25, random_state=1,
                                                     stratify=malignant)
    xs = StandardScaler().fit(Xtr)
    s_mu, s_sd = str_.mean(), str_.std()
    f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)
    tr = TensorDataset(f32(xs.transform(Xtr)), f32(mtr), f32((str_ - s_mu) / s_sd))
    va = TensorDataset(f32(xs.transform(Xva)), f32(mva), f32((sva - s_mu) / s_sd))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiTaskNet(len(keep), LOSS_WEIGHTS), DataLoader(tr, batch_size=32, shuffle=True),
                DataLoader(va, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_size_r2={float(m['val_size_r2']):.3f} val_diag_acc={float(m['val_diag_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
