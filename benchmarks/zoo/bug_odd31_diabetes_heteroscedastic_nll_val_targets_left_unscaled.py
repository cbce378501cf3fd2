"""Bug: heteroscedastic regression on the scikit-learn diabetes data. An MLP predicts a mean and a log-variance for
disease progression and is trained with `F.gaussian_nll_loss` (variance = exp(log_var), kept positive). Features are
standardised with statistics fitted on the training rows only, and the target is standardised too (train mean/std),
as is usual for a Gaussian NLL. The mistake: the DataModule builds the validation dataset from the *raw* target
(`y_va`) instead of the scaled one (`y_va_s`), a copy-paste slip between the two `TensorDataset` lines. Training is
unaffected and its loss falls normally, but validation compares a mean near 0 with targets around 150 and a unit
scale variance, so the val NLL is huge and grows as the predicted variance tightens.
Measured: buggy val_nll=5.5e4 (train_nll 0.79); fixed version val_nll=1.34 (train_nll 0.79)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout31"


class DiabetesData(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x, y = load_diabetes(return_X_y=True)
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
        tr, va = perm[:350], perm[350:]
        mu, sd = x[tr].mean(0), x[tr].std(0)
        y_mu, y_sd = y[tr].mean(), y[tr].std()
        x_tr, x_va = (x[tr] - mu) / sd, (x[va] - mu) / sd
        y_tr_s, y_va = (y[tr] - y_mu) / y_sd, y[va]
        self.train_ds = TensorDataset(x_tr, y_tr_s)
        self.val_ds = TensorDataset(x_va, y_va)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class HeteroMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(10, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU())
        self.mean = nn.Linear(64, 1)
        self.log_var = nn.Linear(64, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h).squeeze(-1), self.log_var(h).squeeze(-1).clamp(-6, 6)

    def _nll(self, batch):
        x, y = batch
        mean, log_var = self(x)
        return F.gaussian_nll_loss(mean, y, log_var.exp(), full=True)

    def training_step(self, batch, batch_idx):
        loss = self._nll(batch)
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self._nll(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HeteroMLP(), datamodule=DiabetesData())
    print(f"SYMPTOM val_nll={trainer.callback_metrics['val_nll'].item():.4g} "
          f"train_nll={trainer.callback_metrics['train_nll'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
