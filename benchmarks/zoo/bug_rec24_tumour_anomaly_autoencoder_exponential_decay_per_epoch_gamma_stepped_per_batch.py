"""Bug: anomaly-detection autoencoder on the breast-cancer data (sklearn `load_breast_cancer`). Following the
one-class recipe, it is trained to reconstruct benign samples only (80 % of them; the standardiser is fitted on
those too), and malignant tumours are scored as anomalies by reconstruction error. Validation reports the
reconstruction MSE of the held-out benign samples and the AUROC of benign-vs-malignant by error.

The LR schedule is `ExponentialLR(opt, gamma=0.95)`, a per-epoch decay (0.95^60 = 0.05 at the end of 60
epochs), but it is returned with `"interval": "step"` because the warm-up it replaced was per step. With 9 steps
per epoch the learning rate is multiplied by 0.95 every batch: it is down to 1 % of its value after 90 steps
(10 epochs) and to ~1e-12 by the end, so the autoencoder stops learning early while the loss curve just looks
converged. Symptom: val benign MSE 0.869 (the fixed version gets 0.241 with `"interval": "epoch"`). The anomaly
AUROC is no worse (0.956 vs 0.934): the under-trained autoencoder reconstructs nothing well, which hides the
problem if only the AUROC is watched, but its error threshold and any downstream use of the codes are off."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import binary_auroc

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout24"


class TumourAutoencoder(L.LightningModule):
    def __init__(self, n_features=30, code=6, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_features, 24), nn.GELU(), nn.Linear(24, code))
        self.decoder = nn.Sequential(nn.Linear(code, 24), nn.GELU(), nn.Linear(24, n_features))

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch[0]), batch[0])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, malignant = batch
        error = (self(x) - x).pow(2).mean(1)
        self.log("val_loss", error[malignant == 0].mean())
        self.log("val_auroc", binary_auroc(error, malignant))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": decay, "interval": "step"}}


def main():
    L.seed_everything(2411)
    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    malignant = torch.tensor(data.target == 0, dtype=torch.long)
    g = torch.Generator().manual_seed(11)
    benign = (malignant == 0).nonzero().flatten()
    benign = benign[torch.randperm(len(benign), generator=g)]
    n_train = int(0.8 * len(benign))
    train_idx = benign[:n_train]
    val_idx = torch.cat([benign[n_train:], (malignant == 1).nonzero().flatten()])
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    z = (x - mean) / std
    model = TumourAutoencoder()
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(z[train_idx]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(z[val_idx], malignant[val_idx]), batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_benign_mse={float(m['val_loss']):.3f} val_auroc={float(m['val_auroc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
