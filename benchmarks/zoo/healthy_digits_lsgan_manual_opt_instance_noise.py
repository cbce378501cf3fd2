"""Healthy: least-squares GAN on sklearn digits with manual optimization (`automatic_optimization = False`): an MLP
generator (tanh output in [-1, 1]) and an MLP discriminator with LeakyReLU and dropout, Adam(0.5, 0.999) for both,
one D step then one G step per batch, instance noise on the discriminator's inputs annealed from 0.3 to 0 over the
run. Symptom metric: a digit classifier (logistic regression fitted on real digits) labels the generated samples
with confident, varied classes. Measured: final d_loss 0.16 / g_loss 0.52, mean sample confidence 0.74, all 10
classes generated."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
Z = 32


class LSGAN(L.LightningModule):
    def __init__(self, lr=5e-4, epochs=25):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.G = nn.Sequential(nn.Linear(Z, 128), nn.LeakyReLU(0.2), nn.Linear(128, 256), nn.LeakyReLU(0.2),
                               nn.Linear(256, 64), nn.Tanh())
        self.D = nn.Sequential(nn.Linear(64, 256), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(256, 128),
                               nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(128, 1))

    def forward(self, z):
        return self.G(z)

    def noise_std(self):
        return 0.3 * max(0.0, 1 - self.current_epoch / self.hparams.epochs)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.size(0), Z, device=self.device)
        s = self.noise_std()

        fake = self.G(z)
        d_real = self.D(real + s * torch.randn_like(real))
        d_fake = self.D(fake.detach() + s * torch.randn_like(fake))
        d_loss = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        d_gen = self.D(fake + s * torch.randn_like(fake))
        g_loss = F.mse_loss(d_gen, torch.ones_like(d_gen))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=True)

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.G.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.D.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999))
        return [opt_g, opt_d]


def main():
    L.seed_everything(32)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 8.0 - 1.0
    model = LSGAN()
    trainer = L.Trainer(max_epochs=model.hparams.epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x), batch_size=64, shuffle=True, drop_last=True))
    clf = LogisticRegression(max_iter=2000).fit(d.data / 16.0, d.target)
    with torch.no_grad():
        samples = (model(torch.randn(500, Z)) + 1) / 2
    proba = clf.predict_proba(samples.numpy())
    classes = len(set(proba.argmax(1).tolist()))
    m = trainer.callback_metrics
    print(f"SYMPTOM d_loss={m['d_loss'].item():.3f} g_loss={m['g_loss'].item():.3f} "
          f"sample_confidence={proba.max(1).mean():.3f} distinct_classes={classes}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
