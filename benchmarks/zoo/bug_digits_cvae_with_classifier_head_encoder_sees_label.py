"""Bug: a multi-task variational autoencoder on sklearn digits: the latent mean feeds a classifier head (cross-
entropy) next to the usual reconstruction + KL terms, so that one model gives both a generator and a digit
classifier. The code started from a *conditional* VAE tutorial, whose encoder is `enc(cat([x, one_hot(y)]))` and
decoder `dec(cat([z, one_hot(y)]))`; the classifier head was then bolted onto `mu`. The encoder therefore reads
the very label the classifier head must predict, and the head learns to copy it. Validation (built the same way)
reports a near-perfect classifier; at deployment, where y is unknown (an all-zero one-hot), it is poor.
Symptom: val acc 1.000 with the label in the encoder input, but 0.76 when the encoder gets a zero one-hot instead;
with an unconditional encoder (x only) val acc is 0.96 and stays 0.96."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout13"


class ClassifyingCVAE(L.LightningModule):
    def __init__(self, latent=8, hidden=128, beta=0.5, cls_weight=1.0, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(64 + 10, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent + 10, hidden), nn.ReLU(), nn.Linear(hidden, 64))
        self.classifier = nn.Sequential(nn.Linear(latent, 32), nn.ReLU(), nn.Linear(32, 10))
        self.last_val = {}

    def encode(self, x, y_onehot):
        h = self.encoder(torch.cat([x, y_onehot], dim=1))
        return self.mu(h), self.logvar(h).clamp(-8, 8)

    def forward(self, x, y_onehot):
        mu, logvar = self.encode(x, y_onehot)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        recon_logits = self.decoder(torch.cat([z, y_onehot], dim=1))
        return recon_logits, mu, logvar, self.classifier(mu)

    def _losses(self, batch):
        x, y = batch
        y1 = F.one_hot(y, 10).float()
        recon_logits, mu, logvar, class_logits = self(x, y1)
        recon = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="none").sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        ce = F.cross_entropy(class_logits, y)
        acc = (class_logits.argmax(1) == y).float().mean()
        return recon, kl, ce, acc

    def training_step(self, batch, batch_idx):
        recon, kl, ce, acc = self._losses(batch)
        loss = recon / 64 + self.hparams.beta * kl / 64 + self.hparams.cls_weight * ce
        self.log_dict({"train_recon": recon, "train_kl": kl, "train_ce": ce, "train_acc": acc})
        return loss

    def validation_step(self, batch, batch_idx):
        recon, kl, ce, acc = self._losses(batch)
        self.log_dict({"val_recon": recon, "val_ce": ce, "val_acc": acc})

    def on_validation_epoch_end(self):
        self.last_val = {k: float(v) for k, v in self.trainer.callback_metrics.items()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(77)
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.25, random_state=3, stratify=y)
    Xt, Xv, yt, yv = map(torch.from_numpy, (Xt, Xv, yt, yv))
    train_loader = DataLoader(TensorDataset(Xt, yt), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(Xv, yv), batch_size=256)
    model = ClassifyingCVAE()
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="digits_cvae_classifier"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_loader, val_loader)
    model.eval()
    with torch.no_grad():
        _, _, _, logits = model(Xv, torch.zeros(len(Xv), 10))
        blind_acc = (logits.argmax(1) == yv).float().mean().item()
    print(f"SYMPTOM val_acc={model.last_val['val_acc']:.3f} val_acc_label_unknown={blind_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
