"""Bug: a toy DDPM on 2-D points (a ring of 8 Gaussian blobs, radius 2, from a seeded torch.Generator). An MLP
predicts the noise eps from (x_t, t) with the standard epsilon objective, linear beta schedule over T = 200 steps,
Adam with cosine decay; validation reports the same denoising loss on held-out points, and at the end 2000 points
are sampled with the ancestral reverse process.

The timestep is given to the network by concatenating it to the point, `torch.cat([x_t, t[:, None].float()], 1)`,
as the raw integer step 0..199 (the tutorial it was adapted from divided by T in its dataset, this code samples t
in the step instead and the scaling got lost). The first layer sees one input column up to a hundred times larger than
the coordinates (which are ~1), so the noise level dominates the pre-activations and the network resolves x_t poorly.
Training still goes down and samples still look like a blurry ring. Symptom: val eps-MSE 0.571 vs 0.510 with
`t / T`, and only 37 % of the samples land within 0.5 of a blob centre vs 62 % with the fix."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout20"
STEPS = 200


def ring_of_gaussians(n, g, k=8, radius=2.0, std=0.12):
    angles = 2 * math.pi * torch.randint(0, k, (n,), generator=g).float() / k
    centres = radius * torch.stack([angles.cos(), angles.sin()], 1)
    return centres + std * torch.randn(n, 2, generator=g)


class PointDDPM(L.LightningModule):
    def __init__(self, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))
        betas = torch.linspace(1e-4, 0.02, STEPS)
        self.register_buffer("betas", betas)
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0))

    def forward(self, x_t, t):
        return self.net(torch.cat([x_t, t[:, None].float()], 1))

    def _loss(self, x0):
        t = torch.randint(0, STEPS, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        ab = self.alpha_bar[t][:, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        return F.mse_loss(self(x_t, t), eps)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    @torch.no_grad()
    def sample(self, n):
        x = torch.randn(n, 2)
        for step in reversed(range(STEPS)):
            t = torch.full((n,), step)
            beta, ab = self.betas[step], self.alpha_bar[step]
            mean = (x - beta / (1 - ab).sqrt() * self(x, t)) / (1 - beta).sqrt()
            x = mean + (beta.sqrt() * torch.randn_like(x) if step > 0 else 0)
        return x

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(808)
    g = torch.Generator().manual_seed(3)
    train, val = ring_of_gaussians(8000, g), ring_of_gaussians(1000, g)
    model = PointDDPM()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=500))
    model.eval()
    samples = model.sample(2000)
    angles = 2 * math.pi * torch.arange(8).float() / 8
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    near = (torch.cdist(samples, centres).min(1).values < 0.5).float().mean()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} samples_near_blob={float(near):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
