"""Healthy: a dense mixture of three small MLP experts (softmax gate over the experts) on sklearn's diabetes set,
features and target standardised with training statistics. Each expert predicts a mean and a log-variance; the mixture
is trained with the Gaussian negative log-likelihood (`F.gaussian_nll_loss`), Adam, and Lightning's
`StochasticWeightAveraging` over the last 30 % of the epochs. Reaches val R^2 ~0.45 (a constant gets 0)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"


class GaussianMoE(L.LightningModule):
    def __init__(self, d_in=10, n_experts=3, hidden=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 2)) for _ in range(n_experts))
        self.gate = nn.Linear(d_in, n_experts)

    def forward(self, x):
        weights = F.softmax(self.gate(x), dim=-1)  # (B, E)
        out = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, 2)
        mean, log_var = (weights.unsqueeze(-1) * out).sum(dim=1).unbind(-1)
        return mean, log_var.clamp(-6, 4).exp()

    def training_step(self, batch, batch_idx):
        x, y = batch
        mean, var = self(x)
        loss = F.gaussian_nll_loss(mean, y, var)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mean, var = self(x)
        self.log("val_nll", F.gaussian_nll_loss(mean, y, var))
        self.log("val_r2", 1 - ((mean - y) ** 2).mean() / y.var(unbiased=False))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(19)
    data = load_diabetes()
    x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.2, random_state=19)
    xs, ys = StandardScaler().fit(x_tr), StandardScaler().fit(y_tr.reshape(-1, 1))
    tensors = lambda x, y: TensorDataset(torch.tensor(xs.transform(x), dtype=torch.float32),
                                         torch.tensor(ys.transform(y.reshape(-1, 1)).ravel(), dtype=torch.float32))
    callbacks = [StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=0.7), *lightning_sanity.default_callbacks()]
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, callbacks=callbacks)
    trainer.fit(GaussianMoE(), DataLoader(tensors(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(tensors(x_va, y_va), batch_size=128))
    m = trainer.callback_metrics
    print(f"val_r2={m['val_r2'].item():.3f} val_nll={m['val_nll'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
