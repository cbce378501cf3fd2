"""Bug: a mixture density network for a one-to-many inverse problem (Bishop's classic: the forward map is
x = y + 0.3 sin(2 pi y) + noise; the network predicts p(y | x), which has up to three branches). Tanh MLP -> 5
mixture weights, 5 means, 5 log-sigmas; the loss is the negative log-likelihood of a
`torch.distributions.MixtureSameFamily`. The head code computes `pi = F.softmax(self.pi(h), -1)` (the tutorial it
was taken from used its own log-sum-exp loss with probabilities) and then builds `Categorical(logits=pi)`, so the
probabilities are read as logits and softmaxed a second time: every mixture weight is squeezed into [0.08, 0.41]
and the network cannot switch a branch off where it does not exist (it can only partly make up for it by stacking
several components on one branch).
Symptom: val NLL -0.98 vs -1.11 with `Categorical(probs=pi)` (or `logits=self.pi(h)`); largest branch weight at a
single-branch x (x = 0.05): 0.41 vs 1.00."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, Normal
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout15"
K = 5


def make_data(n, g):
    y = torch.rand(n, generator=g)
    x = y + 0.3 * torch.sin(2 * math.pi * y) + 0.05 * torch.randn(n, generator=g)
    return x[:, None], y


class MDN(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.pi, self.mu, self.log_sigma = nn.Linear(hidden, K), nn.Linear(hidden, K), nn.Linear(hidden, K)

    def forward(self, x):
        h = self.body((x - 0.5) / 0.35)
        pi = F.softmax(self.pi(h), -1)
        sigma = F.softplus(self.log_sigma(h)) + 1e-3
        return pi, self.mu(h), sigma

    def dist(self, x):
        pi, mu, sigma = self(x)
        return MixtureSameFamily(Categorical(logits=pi), Normal(mu, sigma))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = -self.dist(x).log_prob(y).mean()
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_nll", -self.dist(x).log_prob(y).mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5)
    g = torch.Generator().manual_seed(5)
    x_tr, y_tr = make_data(6000, g)
    x_va, y_va = make_data(1500, g)
    model = MDN()
    trainer = L.Trainer(max_epochs=25, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="mdn_inverse"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=1500))
    model.eval()
    with torch.no_grad():
        nll = -model.dist(x_va).log_prob(y_va).mean().item()
        mix = model.dist(torch.tensor([[0.05]])).mixture_distribution.probs
    print(f"SYMPTOM val_nll={nll:.3f}")
    print(f"SYMPTOM max_branch_weight_at_x0.05={mix.max().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
