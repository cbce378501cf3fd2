"""Bug (dead gradient): masked-feature modelling (a tabular MAE) on the wine data as a pre-training objective. Each
row's 13 standardized features are masked at random (40%); masked entries are replaced by a learned per-feature
`mask_token` and an MLP encoder/decoder reconstructs the row, the loss being the MSE on the masked entries only.
The masking is factored into a helper decorated with `@torch.no_grad()` ("it is just data augmentation"), but
that helper is also where the learned mask token is written into the input, so the `torch.where` that inserts it
is not recorded by autograd and `mask_token` never gets a gradient: it stays at its random initialisation. The
encoder/decoder still learn to impute around it, the loss goes down, nothing crashes; a whole parameter of the
model is simply dead.

Measured (seed 51, 40 epochs): this version val_masked_mse=0.492, mask token frozen at its init (norm 3.962);
fixed version (only the mask sampling under `no_grad`) val_masked_mse=0.485, the token moves (norm 3.357). The
metric difference is small on data this size; the dead parameter is the bug."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout27"


class TabularMAE(L.LightningModule):
    def __init__(self, n_features=13, hidden=64, mask_ratio=0.4, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.mask_token = nn.Parameter(torch.randn(n_features))  # N(0, 1), like the standardized data
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_features))

    @torch.no_grad()
    def random_mask(self, x, generator=None):
        mask = torch.rand(x.shape, generator=generator) < self.hparams.mask_ratio
        return torch.where(mask, self.mask_token.expand_as(x), x), mask

    def forward(self, x_masked):
        return self.decoder(self.encoder(x_masked))

    def masked_mse(self, x, generator=None):
        x_masked, mask = self.random_mask(x, generator)
        recon = self(x_masked)
        return F.mse_loss(recon[mask], x[mask])

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.masked_mse(x)
        self.log("train_masked_mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        g = torch.Generator().manual_seed(batch_idx)
        self.log("val_masked_mse", self.masked_mse(x, g))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(51)
    X, y = load_wine(return_X_y=True)
    X_tr, X_va = train_test_split(X, test_size=0.25, random_state=5, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32))
    val = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32))
    model = TabularMAE()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True, drop_last=True), DataLoader(val, batch_size=64))
    print(f"SYMPTOM val_masked_mse={trainer.callback_metrics['val_masked_mse'].item():.3f} "
          f"mask_token_norm={model.mask_token.norm().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
