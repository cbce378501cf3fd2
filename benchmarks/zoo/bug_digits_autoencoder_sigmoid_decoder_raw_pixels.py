"""Bug: a dense autoencoder whose decoder ends in `nn.Sigmoid()` (as in the Keras/MNIST tutorials it was ported from,
where pixels are scaled to [0, 1]) is trained on sklearn's digits with the pixel values left at 0..16: the
`/ 16.0` of the tutorial's preprocessing was lost when the loader was switched to `load_digits`. Every target pixel
above 1 is out of the sigmoid's reach, so the output units are pushed into saturation at 1 (and 0 on the background)
where their slope vanishes, and MSE cannot fall below the part of the targets above 1. Encoder 64-128-32-8 with ReLU,
decoder 8-32-128-64 with ReLU and a final Sigmoid, MSE, Adam with a StepLR per epoch. Symptom: val relative MSE
(MSE / variance of the val pixels) 1.41 vs 0.28 with the pixels divided by 16."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-activations", "loss-input"}
SPLIT = "heldout8"


class AutoEncoder(L.LightningModule):
    def __init__(self, latent=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 128), nn.ReLU(),
                                     nn.Linear(128, 64), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        mse = F.mse_loss(self(x), x)
        self.log("val_loss", mse)
        self.log("val_rel_mse", mse / x.var())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.3)]


def main():
    L.seed_everything(21)
    pixels = load_digits().data.astype("float32")
    x = torch.tensor(pixels)
    x_tr, x_va = train_test_split(x, test_size=0.2, random_state=0)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AutoEncoder(), DataLoader(TensorDataset(x_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va), batch_size=360))
    print(f"val_rel_mse={trainer.callback_metrics['val_rel_mse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
