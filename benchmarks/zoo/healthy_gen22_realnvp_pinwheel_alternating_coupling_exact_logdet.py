"""Healthy: a RealNVP normalising flow fitted by maximum likelihood to a 2-D pinwheel (five curved arms, the classic
density-estimation toy), drawn from a seeded torch.Generator and standardised with training statistics.

Eight affine coupling layers alternate which coordinate is conditioned on and which is transformed (masks [1, 0] and
[0, 1]); each predicts a shift and a log-scale from the untouched coordinate, the log-scale is bounded with `scale *
tanh(.)` (a learned per-layer scale initialised at one; the last layer of each coupling net is zero-initialised as
in Glow, so the flow starts as the identity; because the scale is one, not zero, the log-scale head is not stuck at
zero gradient), and the log-determinant is the sum of the log-scales of the transformed coordinates only. The loss
is the exact negative log-likelihood in nats per point under a standard-normal base, so at initialisation it equals
the NLL of the standardised data under N(0, I), about 2.84 nats, as expected. AdamW with linear warm-up then cosine
decay; grad clipping at 5. Validation reports the same NLL on held-out points; the flow is also sampled by inverting
the couplings exactly. Measured: NLL 2.84 at init, val NLL 2.11 after 10 epochs, sample std 0.98 (data: 1)."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"


def pinwheel(n, g, arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    labels = torch.randint(0, arms, (n,), generator=g)
    feats = torch.randn(n, 2, generator=g) * torch.tensor([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angles = 2 * math.pi * labels / arms + rate * torch.exp(feats[:, 0])
    rot = torch.stack([torch.stack([angles.cos(), -angles.sin()], 1), torch.stack([angles.sin(), angles.cos()], 1)], 1)
    return torch.einsum("nij,nj->ni", rot, feats)


class AffineCoupling(nn.Module):
    def __init__(self, mask, hidden=64):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 4))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(2))

    def _params(self, x_cond):
        shift, raw = self.net(x_cond).chunk(2, dim=1)
        log_s = self.scale * torch.tanh(raw)
        free = 1 - self.mask
        return shift * free, log_s * free

    def forward(self, x):
        shift, log_s = self._params(x * self.mask)
        return x * log_s.exp() + shift, log_s.sum(1)

    def inverse(self, y):
        shift, log_s = self._params(y * self.mask)
        return (y - shift) * (-log_s).exp()


class RealNVP(L.LightningModule):
    def __init__(self, n_layers=8, lr=2e-3, warmup=100):
        super().__init__()
        self.save_hyperparameters()
        masks = [torch.tensor([1.0, 0.0]) if i % 2 == 0 else torch.tensor([0.0, 1.0]) for i in range(n_layers)]
        self.layers = nn.ModuleList([AffineCoupling(m) for m in masks])

    def forward(self, x):
        logdet = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def nll(self, x):
        z, logdet = self(x)
        log_pz = -0.5 * z.pow(2).sum(1) - math.log(2 * math.pi)
        return -(log_pz + logdet).mean()

    @torch.no_grad()
    def sample(self, n):
        z = torch.randn(n, 2)
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def training_step(self, batch, batch_idx):
        loss = self.nll(batch[0])
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2208)
    g = torch.Generator().manual_seed(9)
    train, val = pinwheel(6000, g), pinwheel(1500, g)
    mean, std = train.mean(0), train.std(0)
    train, val = (train - mean) / std, (val - mean) / std
    model = RealNVP()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=5.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=750))
    model.eval()
    samples = model.sample(2000)
    print(f"SYMPTOM val_nll={float(trainer.callback_metrics['val_nll']):.3f} "
          f"sample_std={float(samples.std(0).mean()):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
