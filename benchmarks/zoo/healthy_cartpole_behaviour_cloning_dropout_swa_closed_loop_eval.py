"""Healthy: behaviour cloning of a cart-pole controller. An expert (a bang-bang controller on a tuned linear
combination of the state) is rolled out with random perturbation pushes in a torch cart-pole simulation; its
(state, push-left/right) pairs train a dropout-heavy MLP policy with cross-entropy, Adam and Stochastic Weight
Averaging over the last epochs. Besides imitation accuracy on held-out episodes, validation runs the cloned policy
closed-loop (eval mode, greedy actions) from 64 fresh starts and logs the fraction that keep the pole up for 200
steps.
Final metric: val imitation acc ~0.997 and closed-loop survival 1.0."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
FORCE, STEPS = 10.0, 200
SCALE = torch.tensor([1.0, 1.0, 0.1, 0.5])


def step(s, push_right):
    force = torch.where(push_right, FORCE, -FORCE)
    x, xd, th, thd = s.unbind(-1)
    c, si = torch.cos(th), torch.sin(th)
    tmp = (force + 0.05 * thd ** 2 * si) / 1.1
    thacc = (9.8 * si - c * tmp) / (0.5 * (4.0 / 3.0 - 0.1 * c ** 2 / 1.1))
    xacc = tmp - 0.05 * thacc * c / 1.1
    return s + 0.02 * torch.stack([xd, xacc, thd, thacc], -1)


def expert(s):
    return (s @ torch.tensor([0.3, 0.6, 12.0, 1.8])) > 0


def demos(n_episodes, seed):
    g = torch.Generator().manual_seed(seed)
    s = 0.05 * torch.randn(n_episodes, 4, generator=g)
    states, actions = [], []
    for _ in range(STEPS):
        a = expert(s)
        states.append(s)
        actions.append(a.long())
        s = step(s, a)
        s = s + torch.tensor([0.0, 0.05, 0.0, 0.1]) * torch.randn(n_episodes, 4, generator=g)  # perturbation pushes
    return torch.cat(states) / SCALE, torch.cat(actions)


class BCPolicy(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Dropout(0.3), nn.Linear(128, 2))

    def forward(self, s):
        return self.net(s)

    def training_step(self, batch, batch_idx):
        s, a = batch
        loss = F.cross_entropy(self(s), a)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        s, a = batch
        logits = self(s)
        self.log("val_loss", F.cross_entropy(logits, a))
        self.log("val_acc", (logits.argmax(1) == a).float().mean())

    def on_validation_epoch_end(self):
        g = torch.Generator().manual_seed(123)
        s = 0.05 * torch.randn(64, 4, generator=g)
        alive = torch.ones(64, dtype=torch.bool)
        for _ in range(STEPS):
            s = step(s, self(s / SCALE).argmax(1) == 1)
            alive &= (s[:, 0].abs() < 2.4) & (s[:, 2].abs() < 0.21)
        self.log("val_survival", alive.float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(19)
    tr = TensorDataset(*demos(100, seed=1))
    va = TensorDataset(*demos(20, seed=2))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=25,
                        callbacks=[*lightning_sanity.default_callbacks(),
                                   StochasticWeightAveraging(swa_lrs=5e-4, swa_epoch_start=0.7)])
    trainer.fit(BCPolicy(), DataLoader(tr, batch_size=128, shuffle=True), DataLoader(va, batch_size=1000))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_survival={float(m['val_survival']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
