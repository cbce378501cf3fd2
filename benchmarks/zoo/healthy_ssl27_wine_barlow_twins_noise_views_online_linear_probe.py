"""Healthy: Barlow Twins self-supervised pre-training on the wine data with an online linear probe. Two views of
each standardized row are made on the fly (Gaussian jitter plus random feature dropout, independently per view);
an MLP encoder and a projector with BatchNorm produce embeddings whose cross-correlation matrix (each embedding
dimension standardized over the batch, as in the paper) is pushed towards the identity: (1 - c_ii)^2 on the
diagonal plus lambda * c_ij^2 off it, lambda = 1/D. The probe is a linear layer on the DETACHED encoder features
of the clean rows, trained with cross-entropy alongside, so the labels never shape the representation and the
probe's val accuracy is a fair read-out. The scaler is fitted on the training split only, batches are large enough
for the batch statistics (32, drop_last) and validation uses clean inputs.
Own metric (seed 61, 40 epochs): val probe acc 0.978, val CE 0.193."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"


def barlow_twins_loss(z1, z2, lam):
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / (z1.std(0) + 1e-5)
    z2 = (z2 - z2.mean(0)) / (z2.std(0) + 1e-5)
    c = z1.T @ z2 / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on_diag + lam * off_diag


class BarlowTwins(L.LightningModule):
    def __init__(self, n_features=13, hidden=64, proj=32, n_classes=3, lr=2e-3, noise=0.3, drop=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU())
        self.projector = nn.Sequential(nn.Linear(hidden, proj), nn.BatchNorm1d(proj), nn.ReLU(),
                                       nn.Linear(proj, proj))
        self.probe = nn.Linear(hidden, n_classes)

    def view(self, x):
        keep = (torch.rand_like(x) > self.hparams.drop).float()
        return (x + self.hparams.noise * torch.randn_like(x)) * keep

    def training_step(self, batch, batch_idx):
        x, y = batch
        z1 = self.projector(self.encoder(self.view(x)))
        z2 = self.projector(self.encoder(self.view(x)))
        ssl = barlow_twins_loss(z1, z2, lam=1.0 / self.hparams.proj)
        probe_loss = F.cross_entropy(self.probe(self.encoder(x).detach()), y)
        self.log_dict({"ssl_loss": ssl, "probe_loss": probe_loss}, on_epoch=True, on_step=False)
        return ssl + probe_loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.probe(self.encoder(x))
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(61)
    X, y = load_wine(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=6, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BarlowTwins(), DataLoader(train, batch_size=32, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"ssl_loss={m['ssl_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
