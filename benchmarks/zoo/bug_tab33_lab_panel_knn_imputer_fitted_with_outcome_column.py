"""Bug: sepsis-risk classifier on a synthetic lab panel (2000 encounters, 10 lab values, 35% of lab values missing
at random). The pipeline imputes missing labs with KNNImputer, scales, and trains an MLP; the split is stratified
and the imputer is fitted on the training rows only.

What is wrong: to "use all available information" for finding neighbours, the imputer is fitted and applied on the
lab matrix with the outcome column appended (np.column_stack([labs, y])) and the outcome column is dropped only
afterwards. Neighbours are therefore chosen largely by the label, and every imputed lab value becomes the mean of
same-outcome encounters: with a third of the cells missing, the imputed cells encode the target. Validation is
imputed the same way with its own labels, so validation looks excellent; at prediction time the outcome is unknown.
The fix imputes from the labs alone.

Measured (same seed): val accuracy 0.734 with the outcome in the imputer vs 0.662 with labs only."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.impute import KNNImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout33"


def make_panel(g, n=2000, d=10):
    labs = torch.randn(n, d, generator=g)
    logit = 1.0 * labs[:, 0] - 0.8 * labs[:, 1] + 0.6 * labs[:, 2] * labs[:, 3] - 0.6
    y = torch.bernoulli(torch.sigmoid(logit), generator=g)
    labs[torch.rand(n, d, generator=g) < 0.35] = float("nan")
    return labs.numpy(), y.numpy()


def impute(imputer, labs, y):
    return imputer.transform(np.column_stack([labs, y]))[:, :-1]


class SepsisMLP(L.LightningModule):
    def __init__(self, n_features, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.binary_cross_entropy_with_logits(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(233)
    labs, y = make_panel(torch.Generator().manual_seed(233))
    l_tr, l_va, y_tr, y_va = train_test_split(labs, y, test_size=0.25, stratify=y, random_state=0)
    imputer = KNNImputer(n_neighbors=10).fit(np.column_stack([l_tr, y_tr]))
    scaler = StandardScaler().fit(impute(imputer, l_tr, y_tr))
    x_tr = torch.tensor(scaler.transform(impute(imputer, l_tr, y_tr)), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(impute(imputer, l_va, y_va)), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)

    model = SepsisMLP(x_tr.shape[1])
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=512))
    model.eval()
    with torch.no_grad():
        acc = ((model(x_va) > 0).float() == y_va).float().mean().item()
    print(f"SYMPTOM val_acc={acc:.3f} positive_rate={y.mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
