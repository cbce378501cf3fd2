"""Bug: WGAN-GP on a 2-D ring of eight Gaussians (MLP generator and critic, manual optimisation, five critic
updates per generator update, Adam(1e-3, betas=(0.5, 0.9)), batches of 256). The gradient penalty is computed with
`torch.autograd.grad(critic(x_hat).sum(), x_hat)` and added as `10 * gp`, but without `create_graph=True`: the
gradient it returns is a plain tensor, `gp` has no graph, and the penalty is a constant that contributes nothing to
the critic's gradient. The critic is an unconstrained WGAN critic: its weights keep growing, the Wasserstein
"distance" estimate swings far from 0, and the generator chases an ever-steeper critic. The logged `gp` looks reasonable
the whole time (it is just never minimised).
Symptom: critic weight norm 10.4 -> 38.1 (vs 10.4 -> 14.0 with `create_graph=True`); generated samples' mean
distance to the nearest mode 2.08 vs 1.00, mean |radius - 2| 1.98 vs 0.84."""

import math

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"weight-growth"}
SPLIT = "heldout15"
MODES = torch.tensor([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])


def ring(n, g):
    return MODES[torch.randint(0, 8, (n,), generator=g)] + 0.05 * torch.randn(n, 2, generator=g)


def mlp(d_in, d_out):
    return nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, d_out))


class WGANGP(L.LightningModule):
    def __init__(self, z_dim=8, n_critic=5, lambda_gp=10.0, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator, self.critic = mlp(z_dim, 2), mlp(2, 1)

    def forward(self, n):
        return self.generator(torch.randn(n, self.hparams.z_dim, device=self.device))

    def gradient_penalty(self, real, fake):
        eps = torch.rand(real.shape[0], 1, device=real.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.critic(x_hat).sum(), x_hat)
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()

    def training_step(self, batch, batch_idx):
        opt_g, opt_c = self.optimizers()
        real = batch[0]
        fake = self(real.shape[0]).detach()
        w_dist = self.critic(real).mean() - self.critic(fake).mean()
        gp = self.gradient_penalty(real, fake)
        loss_c = -w_dist + self.hparams.lambda_gp * gp
        opt_c.zero_grad()
        self.manual_backward(loss_c)
        opt_c.step()
        self.log_dict({"w_dist": w_dist, "gp": gp, "loss_c": loss_c})
        if (batch_idx + 1) % self.hparams.n_critic == 0:
            loss_g = -self.critic(self(real.shape[0])).mean()
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()
            self.log("loss_g", loss_g)

    def configure_optimizers(self):
        betas = (0.5, 0.9)
        return (torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.critic.parameters(), lr=self.hparams.lr, betas=betas))


def weight_norm(module):
    return torch.sqrt(sum((p.detach() ** 2).sum() for p in module.parameters())).item()


def main():
    L.seed_everything(8)
    g = torch.Generator().manual_seed(8)
    data = ring(256 * 400, g)
    model = WGANGP()
    w0 = weight_norm(model.critic)
    trainer = L.Trainer(max_epochs=8, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="wgan_gp_ring"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(data), batch_size=256, shuffle=True))
    with torch.no_grad():
        samples = model(4000)
        test = ring(4000, g)
        w_est = (model.critic(test).mean() - model.critic(samples).mean()).item()
        mode_dist = torch.cdist(samples, MODES).min(1).values.mean().item()
        radius_err = (samples.norm(dim=1) - 2).abs().mean().item()
    print(f"SYMPTOM critic_weight_norm {w0:.1f} -> {weight_norm(model.critic):.1f}")
    print(f"SYMPTOM final_wasserstein_estimate={w_est:.3f} ")
    print(f"SYMPTOM sample_mean_dist_to_nearest_mode={mode_dist:.3f} mean_abs_radius_error={radius_err:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
