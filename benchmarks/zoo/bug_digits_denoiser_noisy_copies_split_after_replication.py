"""Bug: a denoising autoencoder for 500 sklearn digits (conv encoder -> 32-d bottleneck -> conv decoder, MSE between
the reconstruction of a noisy digit and the clean digit). To get "more data" the user makes 10 noisy copies of every
digit (Gaussian noise, sigma 0.5, clamped) and only then calls `random_split(0.8/0.2)` on the 10x larger set. Nearly
every validation pair has its clean target (and ~8 other noisy versions of it) in the training set, so validation
measures recall of training digits, not denoising of unseen ones. Symptom: val MSE 0.0286 on the overlapping split
vs 0.0321 when the digits are split before replication (the honest number): validation is ~11 % too optimistic."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout18"
COPIES = 10
SIGMA = 0.5


class DenoisingAE(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                                 nn.ReLU(), nn.Flatten(), nn.Linear(64 * 16, 32))
        self.dec_fc = nn.Linear(32, 64 * 16)
        self.dec = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.dec(self.dec_fc(self.enc(x)).view(-1, 64, 4, 4))

    def training_step(self, batch, batch_idx):
        noisy, clean = batch
        loss = F.mse_loss(self(noisy), clean)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        noisy, clean = batch
        self.log("val_mse", F.mse_loss(self(noisy), clean), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(1804)
    x = torch.tensor(load_digits().images[:500], dtype=torch.float32).unsqueeze(1) / 16.0
    g = torch.Generator().manual_seed(18)
    clean = x.repeat(COPIES, 1, 1, 1)
    noisy = (clean + SIGMA * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    full = TensorDataset(noisy, clean)
    n_val = int(0.2 * len(full))
    train_set, val_set = random_split(full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(0))
    model = DenoisingAE()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="digits_denoiser_copies"),
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(train_set, batch_size=64, shuffle=True), DataLoader(val_set, batch_size=256))
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_mse'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
