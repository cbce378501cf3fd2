"""Healthy: sepsis-risk classifier on a synthetic lab panel (2000 encounters, 10 lab values, 35% of the cells missing
at random). Missing labs are imputed with a KNNImputer that sees only the lab values (never the outcome), fitted on
the training rows of a stratified split and applied unchanged to validation; add_indicator=True appends one
missingness flag per lab, which is legitimate information available at prediction time. The scaler is likewise
fitted on training rows only; a small MLP with weight decay trains for 10 epochs. Validation is honest and stable
(accuracy about 0.68, BCE 0.575 against 0.675 for the label prior, with a third of the labs
missing)."""

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

EXPECT = None
SPLIT = "heldout33"


def make_panel(g, n=2000, d=10):
    labs = torch.randn(n, d, generator=g)
    logit = 1.6 * labs[:, 0] - 1.2 * labs[:, 1] + 0.8 * labs[:, 2] * labs[:, 3] - 0.6
    y = torch.bernoulli(torch.sigmoid(logit), generator=g)
    labs[torch.rand(n, d, generator=g) < 0.35] = float("nan")
    return labs.numpy(), y.numpy()


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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)


def main():
    L.seed_everything(233)
    labs, y = make_panel(torch.Generator().manual_seed(233))
    l_tr, l_va, y_tr, y_va = train_test_split(labs, y, test_size=0.25, stratify=y, random_state=0)
    imputer = KNNImputer(n_neighbors=10, add_indicator=True).fit(l_tr)
    scaler = StandardScaler().fit(imputer.transform(l_tr))
    x_tr = torch.tensor(scaler.transform(imputer.transform(l_tr)), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(imputer.transform(l_va)), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)

    model = SepsisMLP(x_tr.shape[1])
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=512))
    model.eval()
    with torch.no_grad():
        logits = model(x_va)
    acc = ((logits > 0).float() == y_va).float().mean().item()
    bce = F.binary_cross_entropy_with_logits(logits, y_va).item()
    print(f"SYMPTOM val_acc={acc:.3f} val_bce={bce:.3f} positive_rate={y.mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
