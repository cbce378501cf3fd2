"""Healthy: a WGAN-GP on 1-D damped oscillation bursts (64 samples, random onset, frequency, decay, amplitude and
phase, sensor noise) - the kind of model used to synthesise extra vibration/impact events. Manual optimisation:
the critic (conv, LeakyReLU, no normalisation) takes a step on every batch with the gradient penalty (lambda 10,
`autograd.grad(create_graph=True)` on real/fake interpolates), the generator (linear + upsampling convs) every 5th
batch; Adam(betas=(0.0, 0.9)) for both, as in the paper. The critic loss is not meant to go to zero and the
generator's is not meant to fall monotonically. Validation: the L1 distance between the mean power spectra of
generated and held-out real bursts, 1.05 for the initial generator and about 0.47 at the end."""

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
T = 64
Z = 32


def bursts(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[None]
    onset = torch.randint(0, 16, (n, 1), generator=g).float()
    f = 0.05 + 0.1 * torch.rand(n, 1, generator=g)
    tau = 8 + 16 * torch.rand(n, 1, generator=g)
    amp = 0.6 + 0.8 * torch.rand(n, 1, generator=g)
    ph = 6.283 * torch.rand(n, 1, generator=g)
    rel = (t - onset).clamp(min=0)
    x = amp * torch.exp(-rel / tau) * torch.sin(6.283 * f * rel + ph) * (t >= onset).float()
    return (x + 0.05 * torch.randn(n, T, generator=g)).unsqueeze(1)


def spectrum(x):
    return torch.fft.rfft(x.squeeze(1), dim=1).abs().pow(2).mean(0)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(Z, 64 * 16), nn.ReLU())
        self.net = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv1d(64, 32, 5, padding=2), nn.ReLU(),
            nn.Conv1d(32, 1, 5, padding=2))

    def forward(self, z):
        return self.net(self.fc(z).view(-1, 64, 16))


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 32, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(32, 64, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(64, 64, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(64 * 8, 1))

    def forward(self, x):
        return self.net(x)


class WGANGP(L.LightningModule):
    def __init__(self, lr=2e-4, n_critic=5, gp_weight=10.0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.gen, self.critic = Generator(), Critic()
        self.register_buffer("fixed_z", torch.randn(500, Z, generator=torch.Generator().manual_seed(0)))

    def gradient_penalty(self, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, device=real.device)
        mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(mix).sum(), mix, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_c = self.optimizers()
        z = torch.randn(real.shape[0], Z, device=real.device)
        fake = self.gen(z).detach()
        w_dist = self.critic(real).mean() - self.critic(fake).mean()
        c_loss = -w_dist + self.hparams.gp_weight * self.gradient_penalty(real, fake)
        opt_c.zero_grad()
        self.manual_backward(c_loss)
        opt_c.step()
        self.log_dict({"critic_loss": c_loss, "w_dist": w_dist})
        if (batch_idx + 1) % self.hparams.n_critic == 0:
            g_loss = -self.critic(self.gen(torch.randn(real.shape[0], Z, device=real.device))).mean()
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            self.log("gen_loss", g_loss)

    def spectral_distance(self, real):
        with torch.no_grad():
            fake = self.gen(self.fixed_z)
        sr, sf = spectrum(real), spectrum(fake)
        return (sr - sf).abs().sum() / sr.sum()

    def validation_step(self, batch, batch_idx):
        (real,) = batch
        self.log("val_spectral_l1", self.spectral_distance(real))

    def configure_optimizers(self):
        betas = (0.0, 0.9)
        return (torch.optim.Adam(self.gen.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.critic.parameters(), lr=self.hparams.lr, betas=betas))


def main():
    L.seed_everything(1234)
    tr, va = bursts(4000, seed=1), bursts(500, seed=2)
    model = WGANGP()
    before = model.spectral_distance(va).item()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="wgan_gp"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr), batch_size=64, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(va), batch_size=500))
    after = model.spectral_distance(va).item()
    with torch.no_grad():
        amp_real = va.abs().amax(2).mean().item()
        amp_fake = model.gen(model.fixed_z).abs().amax(2).mean().item()
    print(f"SYMPTOM spectral_l1_before={before:.3f} after={after:.3f} peak_amp_real={amp_real:.2f} fake={amp_fake:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
