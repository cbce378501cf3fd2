"""Healthy: offline policy evaluation by TD(0) on logged cart-pole transitions. A behaviour policy (a noisy,
deliberately imperfect linear controller) is run in a torch simulation of the classic cart-pole; every transition
(s, r, s', done) goes into a replay table. A value MLP is regressed onto r + gamma * (1 - done) * V_target(s') with
a Huber loss, where V_target is a frozen copy (requires_grad=False, outside the optimizer) updated by Polyak
averaging after every batch. Validation compares V(s) with the Monte-Carlo discounted returns of held-out episodes
(states within 50 steps of the logging cut-off are left out, their Monte-Carlo returns are truncated).
Final metric: val R^2 against Monte-Carlo returns ~0.72."""

import copy

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
GAMMA, HORIZON = 0.9, 150
STATE_SCALE = torch.tensor([1.0, 1.5, 0.1, 1.0])


def dynamics(s, force):
    x, x_dot, theta, theta_dot = s.unbind(-1)
    total_mass, pole_mass_length = 1.1, 0.05
    sin, cos = torch.sin(theta), torch.cos(theta)
    temp = (force + pole_mass_length * theta_dot ** 2 * sin) / total_mass
    theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4 / 3 - 0.1 * cos ** 2 / total_mass))
    x_acc = temp - pole_mass_length * theta_acc * cos / total_mass
    return s + 0.02 * torch.stack([x_dot, x_acc, theta_dot, theta_acc], -1)


def collect(n_episodes, seed):
    """Transitions (s, r, s', done) and, for validation, each visited state's Monte-Carlo return and time step."""
    g = torch.Generator().manual_seed(seed)
    k = torch.tensor([0.5, 1.0, 14.0, 2.0])
    s = 0.05 * torch.randn(n_episodes, 4, generator=g)
    alive = torch.ones(n_episodes, dtype=torch.bool)
    S, R, S2, D, M = [], [], [], [], []
    for _ in range(HORIZON):
        force = ((s * k).sum(-1) + 6.0 * torch.randn(n_episodes, generator=g)).clamp(-10, 10)
        s2 = dynamics(s, force)
        done = (s2[:, 0].abs() > 2.4) | (s2[:, 2].abs() > 0.21)
        S.append(s), S2.append(s2), R.append(torch.ones(n_episodes)), D.append(done.float()), M.append(alive.clone())
        alive = alive & ~done
        s = s2
    S, R, S2, D, M = (torch.stack(v, 1) for v in (S, R, S2, D, M))
    ret, running = torch.zeros_like(R), torch.zeros(n_episodes)
    for t in reversed(range(HORIZON)):
        running = R[:, t] + GAMMA * (1 - D[:, t]) * running
        ret[:, t] = running
    step = torch.arange(HORIZON).expand(n_episodes, HORIZON)
    return S[M] / STATE_SCALE, R[M], S2[M] / STATE_SCALE, D[M], ret[M], step[M]


class TDValue(L.LightningModule):
    def __init__(self, lr=2e-3, tau=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.v = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))
        self.v_target = copy.deepcopy(self.v).requires_grad_(False)

    def forward(self, s):
        return self.v(s).squeeze(-1)

    def training_step(self, batch, batch_idx):
        s, r, s2, done = batch
        with torch.no_grad():
            target = r + GAMMA * (1 - done) * self.v_target(s2).squeeze(-1)
        loss = F.smooth_l1_loss(self(s), target)
        self.log("train_td_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            for p, p_t in zip(self.v.parameters(), self.v_target.parameters()):
                p_t.lerp_(p, self.hparams.tau)

    def validation_step(self, batch, batch_idx):
        s, mc_return = batch
        mse = F.mse_loss(self(s), mc_return)
        self.log("val_mse", mse)
        self.log("val_r2", 1 - mse / mc_return.var())

    def configure_optimizers(self):
        return torch.optim.Adam(self.v.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(6)
    s, r, s2, d, _, _ = collect(400, seed=1)
    vs, _, _, _, vret, vstep = collect(100, seed=2)
    early = vstep < HORIZON - 50  # Monte-Carlo returns near the logging cut-off are truncated; TD bootstraps past it
    tr, va = TensorDataset(s, r, s2, d), TensorDataset(vs[early], vret[early])
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=25,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TDValue(), DataLoader(tr, batch_size=256, shuffle=True), DataLoader(va, batch_size=2048))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_r2={float(m['val_r2']):.3f} val_mse={float(m['val_mse']):.3f} n_transitions={len(tr)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
