"""Bug: two-stage digits pipeline - (1) a conv autoencoder is pretrained on the training images (reconstruction
MSE), (2) its encoder is frozen and a linear probe (64-d code -> 10 classes) is trained on the labels. To reuse the
architecture code, `LinearProbe` subclasses the pretraining module, loads its weights, freezes the encoder and adds
`self.probe`, overriding forward and the steps - but not `configure_optimizers`, which it inherits:
`Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()))`. The optimizer holds the frozen encoder
and the now unused decoder, and none of the probe's parameters, which keep their random initialisation. Both stages
finish without an error; the probe's loss just never moves. Symptom: probe val acc 0.07 / val loss 2.36 vs
0.87 / 0.91 when the probe optimizer is built from `self.probe.parameters()`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout18"


def make_encoder():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 64))


class AEPretrain(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = make_encoder()
        self.decoder = nn.Sequential(nn.Linear(64, 32 * 16), nn.ReLU(), nn.Unflatten(1, (32, 4, 4)),
                                     nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 1, 3, padding=1))

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = F.mse_loss(self.decoder(self.encoder(x)), x)
        self.log("recon_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self.log("val_recon", F.mse_loss(self.decoder(self.encoder(x)), x))

    def configure_optimizers(self):
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr)


class LinearProbe(AEPretrain):
    """Frozen pretrained encoder + linear head."""

    def __init__(self, pretrained, lr=2e-3):
        super().__init__(lr=lr)
        self.load_state_dict(pretrained.state_dict())
        self.encoder.requires_grad_(False)
        self.probe = nn.Linear(64, 10)

    def forward(self, x):
        with torch.no_grad():
            h = self.encoder(x)
        return self.probe(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("probe_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)


def main():
    L.seed_everything(64)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    train_dl = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=256)

    ae = AEPretrain()
    pre = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                    enable_model_summary=False, logger=False, enable_checkpointing=False)
    pre.fit(ae, train_dl, val_dl)

    probe = LinearProbe(ae)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(probe, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM probe val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
