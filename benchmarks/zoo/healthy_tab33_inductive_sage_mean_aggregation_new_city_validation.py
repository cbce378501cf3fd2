"""Healthy: inductive node classification with a two-layer GraphSAGE-style network (separate self and mean-of-
neighbours weights) on synthetic user networks: trained on one city's graph (600 users, 4 interest communities,
homophilous friendships, weak noisy profile features) and validated on another city's graph (300 users), which is how
it will be deployed. Both graphs go through the same preparation: profile features standardised with the training
city's statistics, and the row-normalised (degree-averaging) adjacency built by one helper, so isolated users get a
zero neighbour mean rather than a division by zero. No user, edge or label of the validation city is seen in training.
Trained for 40 full-graph epochs (before it starts to overfit): val loss 0.54, val accuracy 0.84."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
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


def mean_aggregation(adj):
    return adj / adj.sum(1, keepdim=True).clamp(min=1.0)


class CityGraphs(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(2033)
        x_tr, a_tr, y_tr = city_graph(g, 600)
        x_va, a_va, y_va = city_graph(g, 300)
        mean, std = x_tr.mean(0), x_tr.std(0)
        self.train_graph = ((x_tr - mean) / std, mean_aggregation(a_tr), y_tr)
        self.val_graph = ((x_va - mean) / std, mean_aggregation(a_va), y_va)

    def train_dataloader(self):
        return DataLoader([self.train_graph], batch_size=None)

    def val_dataloader(self):
        return DataLoader([self.val_graph], batch_size=None)


class MeanSAGE(L.LightningModule):
    def __init__(self, hidden=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.self1, self.neigh1 = nn.Linear(N_FEATURES, hidden), nn.Linear(N_FEATURES, hidden, bias=False)
        self.self2, self.neigh2 = nn.Linear(hidden, N_CLASSES), nn.Linear(hidden, N_CLASSES, bias=False)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, prop):
        h = self.drop(F.relu(self.self1(x) + self.neigh1(prop @ x)))
        return self.self2(h) + self.neigh2(prop @ h)

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
    model = MeanSAGE()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} "
          f"train_loss={m['train_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
