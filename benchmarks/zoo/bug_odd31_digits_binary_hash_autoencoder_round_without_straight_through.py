"""Bug: semantic hashing of 8x8 digits. An MLP encoder maps each image to 24 sigmoid units that are binarised to a
{0,1} code; an MLP decoder reconstructs the image from the code (MSE on pixels scaled to [0,1]). Binarisation needs
a straight-through estimator: forward uses the rounded bits, backward passes the gradient of the sigmoid through.
The mistake: the code is computed as `torch.round(torch.sigmoid(logits))` with no straight-through term. The
derivative of round is zero everywhere, so every encoder parameter receives an all-zero gradient and the encoder
stays at its random initialisation. Training still "works": the random encoder already yields distinct-ish codes,
and the decoder learns to reconstruct from them, so the loss still falls steadily.
Measured: buggy val recon MSE 0.042; with `code = p + (p.round() - p).detach()` (p the sigmoid) val MSE 0.023."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout31"

N_BITS = 24


class BinaryHashAE(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, N_BITS))
        self.decoder = nn.Sequential(nn.Linear(N_BITS, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())

    def encode(self, x):
        return torch.round(torch.sigmoid(self.encoder(x)))

    def forward(self, x):
        return self.decoder(self.encode(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_mse", F.mse_loss(self(x), x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3)
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    train = DataLoader(TensorDataset(x[perm[:1500]]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[perm[1500:]]), batch_size=512)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BinaryHashAE(), train, val)
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_mse'].item():.4f} "
          f"train_mse={trainer.callback_metrics['train_mse'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
