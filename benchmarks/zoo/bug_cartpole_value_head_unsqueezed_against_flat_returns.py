"""Bug: offline value regression (Monte-Carlo policy evaluation) on logged cart-pole episodes. The cart-pole
dynamics are simulated in torch; a noisy linear controller of varying quality generates episodes that end when the
pole falls or the cart leaves the track; each visited state is labelled with its discounted return-to-go
(gamma=0.97) and an MLP V(s) is regressed onto it.

The value network ends in `nn.Linear(128, 1)`, so it returns (B, 1), while the returns are stored flat, (B,).
`nn.MSELoss()(v, returns)` broadcasts to a (B, B) matrix and compares every prediction with every return of the batch
(PyTorch only emits a UserWarning), so the optimum is the batch-mean return for every state.
Symptom: val R^2 -0.09 / val MSE 1.00 (standardized returns) vs val R^2 0.40 / MSE 0.57 with `v.squeeze(-1)` (each
episode's controller gain is hidden from V, which caps R^2)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout16"
GAMMA = 0.97


def cartpole_step(s, force):
    g, mc, mp, length, dt = 9.8, 1.0, 0.1, 0.5, 0.02
    x, xd, th, thd = s.unbind(-1)
    cos, sin = torch.cos(th), torch.sin(th)
    tmp = (force + mp * length * thd ** 2 * sin) / (mc + mp)
    thacc = (g * sin - cos * tmp) / (length * (4.0 / 3.0 - mp * cos ** 2 / (mc + mp)))
    xacc = tmp - mp * length * thacc * cos / (mc + mp)
    return torch.stack([x + dt * xd, xd + dt * xacc, th + dt * thd, thd + dt * thacc], -1)


def rollout(n_episodes, seed, horizon=200):
    g = torch.Generator().manual_seed(seed)
    gains = torch.tensor([1.0, 1.5, 18.0, 3.0]) * (0.3 + 1.2 * torch.rand(n_episodes, 1, generator=g))
    s = 0.05 * torch.randn(n_episodes, 4, generator=g)
    alive = torch.ones(n_episodes, dtype=torch.bool)
    states, rewards, masks = [], [], []
    for _ in range(horizon):
        force = (s * gains).sum(-1) + 4.0 * torch.randn(n_episodes, generator=g)
        force = force.clamp(-10, 10)
        states.append(s)
        masks.append(alive.clone())
        rewards.append(alive.float())
        s = cartpole_step(s, force)
        alive = alive & (s[:, 0].abs() < 2.4) & (s[:, 2].abs() < 0.21)
    states, rewards, masks = torch.stack(states, 1), torch.stack(rewards, 1), torch.stack(masks, 1)
    returns = torch.zeros_like(rewards)
    running = torch.zeros(n_episodes)
    for t in reversed(range(horizon)):
        running = rewards[:, t] + GAMMA * running
        returns[:, t] = running
    return states[masks], returns[masks]


class ValueNet(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.v = nn.Sequential(nn.Linear(4, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))
        self.criterion = nn.MSELoss()

    def forward(self, s):
        return self.v(s)

    def training_step(self, batch, batch_idx):
        s, ret = batch
        loss = self.criterion(self(s), ret)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        s, ret = batch
        mse = ((self(s).reshape(-1) - ret) ** 2).mean()
        self.log("val_mse", mse)
        self.log("val_r2", 1 - mse / ret.var())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(8)
    s_tr, r_tr = rollout(300, seed=1)
    s_va, r_va = rollout(80, seed=2)
    s_mu, s_sd, r_mu, r_sd = s_tr.mean(0), s_tr.std(0), r_tr.mean(), r_tr.std()
    tr = TensorDataset((s_tr - s_mu) / s_sd, (r_tr - r_mu) / r_sd)
    va = TensorDataset((s_va - s_mu) / s_sd, (r_va - r_mu) / r_sd)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ValueNet(), DataLoader(tr, batch_size=128, shuffle=True), DataLoader(va, batch_size=1024))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_r2={float(m['val_r2']):.3f} val_mse={float(m['val_mse']):.3f} n_train={len(tr)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
