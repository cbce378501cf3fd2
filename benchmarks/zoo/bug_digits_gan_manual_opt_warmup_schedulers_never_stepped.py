"""Bug: GAN on sklearn digits (8x8 images scaled to [-1, 1]) with manual optimization: an MLP generator and an MLP
discriminator, non-saturating BCE losses, Adam (2e-4, betas 0.5/0.999) for each, one D step then one G step per
batch. Both optimizers come with a per-step linear warm-up, `LambdaLR(opt, lambda s: min(1, (s + 1) / 300))`,
returned from `configure_optimizers` as `{"scheduler": ..., "interval": "step"}`. With
`automatic_optimization = False` Lightning never steps schedulers; the training step must call
`self.lr_schedulers()` and `.step()` them itself, and this one does not. Both learning rates stay at their first
warm-up value, 2e-4 / 300, for the whole run, and the generator barely leaves its initial noise.
Why a user writes it: the optimizer/scheduler pair is copied from an automatic-optimization project, where the
interval dict is all it takes; nothing warns that it is ignored here.
Symptom: pixel-space Frechet distance of 1000 samples to the real digits 41.9 (mean confidence of a logistic
regression digit classifier on the samples 0.19) vs 21.0 (0.70) when both schedulers are stepped every batch."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from scipy import linalg
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout12"

Z_DIM = 32


class DigitsGAN(L.LightningModule):
    def __init__(self, lr=2e-4, warmup=300):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(
            nn.Linear(Z_DIM, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 64), nn.Tanh(),
        )
        self.discriminator = nn.Sequential(
            nn.Linear(64, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 128), nn.LeakyReLU(0.2),
            nn.Linear(128, 1),
        )

    def forward(self, z):
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], Z_DIM, device=self.device)

        fake = self.generator(z)
        self.toggle_optimizer(opt_d)
        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))) / 2
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        gen_logits = self.discriminator(fake)
        g_loss = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log_dict({"d_loss": d_loss, "g_loss": g_loss})

    def configure_optimizers(self):
        lr, warmup = self.hparams.lr, self.hparams.warmup
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

        def ramp(step):
            return min(1.0, (step + 1) / warmup)

        return (
            [opt_g, opt_d],
            [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt_g, ramp), "interval": "step"},
             {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt_d, ramp), "interval": "step"}],
        )


def frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def main():
    L.seed_everything(64)
    X, y = load_digits(return_X_y=True)
    real = torch.tensor(X / 8.0 - 1.0, dtype=torch.float32)
    loader = DataLoader(TensorDataset(real), batch_size=64, shuffle=True, drop_last=True)

    model = DigitsGAN()
    trainer = L.Trainer(
        max_epochs=40,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="digits_gan"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)

    judge = LogisticRegression(max_iter=2000).fit(real.numpy(), y)
    with torch.no_grad():
        samples = model(torch.randn(1000, Z_DIM)).numpy()
    conf = judge.predict_proba(samples).max(1).mean()
    print(f"SYMPTOM fid_pixels={frechet(samples, real.numpy()):.1f} judge_confidence={conf:.3f} "
          f"final_lr_g={trainer.optimizers[0].param_groups[0]['lr']:.2e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
