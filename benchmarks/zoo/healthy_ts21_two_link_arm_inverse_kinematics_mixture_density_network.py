"""Healthy: a mixture density network for the inverse kinematics of a planar two-link arm (link lengths 1.0 and
0.8). Joint angles are sampled (shoulder in [-pi/2, pi/2], elbow in +-[0.3, 2.8]) and the end-effector position is
computed by forward kinematics plus 1 cm of sensor noise; the task is to predict the joint angles from the position.
Almost every reachable position has two solutions (elbow up and elbow down), so the conditional distribution is
bimodal and a mean-squared-error regressor would average the two into an invalid pose. The MDN outputs 4 diagonal
Gaussian components over the standardized joint angles (mixture logits, means, softplus scales with a 1e-3 floor)
and is trained with the exact mixture negative log-likelihood, `-logsumexp(log_softmax(logits) + log N(y; mu, s))`.
Adam, ReduceLROnPlateau on val NLL, gradient clipping at norm 5.

Why it is correct: the mixture weights are normalised in log space, component log-densities are summed over the two
output dimensions before the logsumexp over components, the scales are positive std-devs passed to `Normal`, the
targets are standardized with training statistics, and the solution is judged in task space: the forward
kinematics of the most probable component's mean lands within a few centimetres of the requested position.
Measured: val NLL -3.03 and median end-effector error 0.034; the same network with a single Gaussian (K = 1),
which has to average the two elbow solutions, gets NLL 0.11 and error 0.171."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
L1, L2, K = 1.0, 0.8, 4


def forward_kinematics(theta):
    a, b = theta[:, 0], theta[:, 1]
    return torch.stack([L1 * a.cos() + L2 * (a + b).cos(), L1 * a.sin() + L2 * (a + b).sin()], 1)


def sample_poses(n, g):
    shoulder = (torch.rand(n, generator=g) - 0.5) * torch.pi
    elbow = 0.3 + 2.5 * torch.rand(n, generator=g)
    elbow = torch.where(torch.rand(n, generator=g) < 0.5, elbow, -elbow)
    theta = torch.stack([shoulder, elbow], 1)
    return forward_kinematics(theta) + 0.01 * torch.randn(n, 2, generator=g), theta


class MixtureDensityNet(L.LightningModule):
    def __init__(self, theta_mean, theta_std, hidden=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("theta_mean", theta_mean)
        self.register_buffer("theta_std", theta_std)
        self.trunk = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.logits = nn.Linear(hidden, K)
        self.means = nn.Linear(hidden, K * 2)
        self.scales = nn.Linear(hidden, K * 2)

    def forward(self, pos):
        h = self.trunk(pos)
        return (self.logits(h), self.means(h).view(-1, K, 2),
                F.softplus(self.scales(h)).view(-1, K, 2) + 1e-3)

    def nll(self, pos, theta):
        logits, mu, scale = self(pos)
        y = ((theta - self.theta_mean) / self.theta_std)[:, None, :]
        log_prob = Normal(mu, scale).log_prob(y).sum(-1)
        return -torch.logsumexp(F.log_softmax(logits, -1) + log_prob, -1).mean()

    def training_step(self, batch, batch_idx):
        loss = self.nll(*batch)
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        pos, theta = batch
        self.log("val_nll", self.nll(pos, theta))
        logits, mu, _ = self(pos)
        best = mu[torch.arange(len(pos)), logits.argmax(-1)] * self.theta_std + self.theta_mean
        self.log("val_ee_err", (forward_kinematics(best) - pos).norm(dim=1).median())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_nll"}}


def main():
    L.seed_everything(2116)
    g = torch.Generator().manual_seed(16)
    pos_tr, theta_tr = sample_poses(12000, g)
    pos_va, theta_va = sample_poses(2000, g)
    model = MixtureDensityNet(theta_tr.mean(0), theta_tr.std(0))
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=5.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(pos_tr, theta_tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(pos_va, theta_va), batch_size=2000))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_nll={float(m['val_nll']):.3f} median_end_effector_err={float(m['val_ee_err']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
