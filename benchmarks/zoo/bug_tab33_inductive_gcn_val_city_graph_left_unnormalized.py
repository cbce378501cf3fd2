"""Bug: inductive node classification with a two-layer GCN on synthetic user networks. The model is trained on one
city's graph (600 users, 4 interest communities, homophilous friendships, weak noisy profile features) and validated
on a different city's graph (300 users), as it will be deployed on new cities. A LightningDataModule turns each graph
into (features, propagation matrix, labels); the propagation matrix should be the symmetric-normalised
D^-1/2 (A + I) D^-1/2 that the GCN was designed for.

What is wrong: the helper that builds the propagation matrix takes normalize=False by default, and setup() passes
normalize=True only for the training graph. The validation graph is propagated with the raw adjacency: no self
loops, and neighbour features are summed instead of degree-averaged, so hidden activations are several times larger
and the node's own features are dropped. Training is unaffected and its loss falls normally; validation loss ends
far above the uniform baseline ln(4) = 1.386.

Measured (same seed): val loss 7.98 / val acc 0.76 with the raw validation adjacency vs val loss 0.60 / val acc 0.83
with both graphs normalised (train loss 0.12 in both)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout33"
N_CLASSES, N_FEATURES = 4, 16


def city_graph(g, n, p_in=0.03, p_out=0.004):
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    centers = torch.randn(N_CLASSES, N_FEATURES, generator=torch.Generator().manual_seed(7))
    x = 0.45 * centers[y] + torch.randn(n, N_FEATURES, generator=g)
    same = (y[:, None] == y[None, :]).float()
    prob = same * p_in + (1 - same) * p_out
    upper = torch.triu((torch.rand(n, n, generator=g) < prob).float(), diagonal=1)
    return x, upper + upper.T, y


def propagation_matrix(adj, normalize=False):
    if not normalize:
        return adj
    a_hat = adj + torch.eye(adj.shape[0])
    d = a_hat.sum(1).rsqrt()
    return d[:, None] * a_hat * d[None, :]


class CityGraphs(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(2033)
        x_tr, a_tr, y_tr = city_graph(g, 600)
        x_va, a_va, y_va = city_graph(g, 300)
        mean, std = x_tr.mean(0), x_tr.std(0)
        self.train_graph = ((x_tr - mean) / std, propagation_matrix(a_tr, normalize=True), y_tr)
        self.val_graph = ((x_va - mean) / std, propagation_matrix(a_va), y_va)

    def train_dataloader(self):
        return DataLoader([self.train_graph], batch_size=None)

    def val_dataloader(self):
        return DataLoader([self.val_graph], batch_size=None)


class GCN(L.LightningModule):
    def __init__(self, hidden=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lin1 = nn.Linear(N_FEATURES, hidden)
        self.lin2 = nn.Linear(hidden, N_CLASSES)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, prop):
        h = self.drop(F.relu(prop @ self.lin1(x)))
        return prop @ self.lin2(h)

    def training_step(self, batch, batch_idx):
        x, prop, y = batch
        loss = F.cross_entropy(self(x, prop), y)
        self.log("train_loss", loss, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, prop, y = batch
        logits = self(x, prop)
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=len(y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(2033)
    dm = CityGraphs()
    model = GCN()
    trainer = L.Trainer(max_epochs=150, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} "
          f"train_loss={m['train_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
