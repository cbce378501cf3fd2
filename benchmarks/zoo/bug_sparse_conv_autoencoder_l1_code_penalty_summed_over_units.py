"""Bug: sparse conv autoencoder on sklearn digits (ReLU code of 128 units, L1 activity penalty on the code for
interpretable parts). The penalty weight 1e-2 was tuned in a notebook with `code.abs().mean()`; the training script
writes the "same" penalty as `code.abs().sum(dim=1).mean()` - 128x stronger. The penalty wins over reconstruction:
every code unit is driven to zero for every input and never comes back (dead ReLUs), so the decoder sees the same
all-zero code for every digit and outputs one mean image. Symptom: val recon MSE 0.074 with 100 % of code units dead
vs 0.011 with `code.abs().mean()` (66 % of units never fire on val: the intended sparse code)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-activations", "constant-output"}
SPLIT = "heldout18"
L1 = 1e-2


class SparseAE(L.LightningModule):
    def __init__(self, lr=2e-3, code=128):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(64 * 16, code), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(code, 64 * 16), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                                     nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(32, 1, 3, padding=1))

    def forward(self, x):
        code = self.encoder(x)
        return self.decoder(code), code

    def training_step(self, batch, batch_idx):
        (x,) = batch
        recon, code = self(x)
        mse = F.mse_loss(recon, x)
        sparsity = code.abs().sum(dim=1).mean()
        self.log_dict({"train_mse": mse, "train_l1": sparsity})
        return mse + L1 * sparsity

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        recon, code = self(x)
        self.log("val_mse", F.mse_loss(recon, x), prog_bar=True)
        self.log("val_dead_frac", (code.amax(0) <= 0).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(128)
    x = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    train, val = TensorDataset(x[perm[:1500]]), TensorDataset(x[perm[1500:]])
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(SparseAE(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={m['val_mse'].item():.4f} dead_code_units={m['val_dead_frac'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
