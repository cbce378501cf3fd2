"""Bug: a hand-written graph convolutional network (symmetric-normalised adjacency, full-batch node classification
on a stochastic-block-model graph whose node features are weakly informative (8 useful columns among 64 noisy
ones), so neighbourhood aggregation carries the signal). The message-passing layers are built in a list comprehension and stored as a plain Python
list (`self.convs = [GraphConv(...) for ...]`) instead of an `nn.ModuleList`; only the `nn.Linear` classifier head
is registered. `self.parameters()` - and so Adam - never sees the convolution weights: they stay at their random
initialisation while the head learns on random projections. Nothing errors (the list layers even receive
gradients). Symptom: val node accuracy 0.29 vs 0.89 with `nn.ModuleList`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout11"
N_NODES, N_CLASSES, N_FEAT = 1200, 6, 64


def make_graph(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (N_NODES,), generator=g)
    same = y[:, None] == y[None, :]
    p = torch.where(same, torch.tensor(0.02), torch.tensor(0.002))
    a = (torch.rand(N_NODES, N_NODES, generator=g) < p).float().triu(1)
    a = a + a.T + torch.eye(N_NODES)
    d = a.sum(1).rsqrt()
    a_hat = d[:, None] * a * d[None, :]
    centroids = torch.zeros(N_CLASSES, N_FEAT)
    centroids[:, :8] = torch.randn(N_CLASSES, 8, generator=g)       # 8 informative columns among 64
    x = 0.6 * centroids[y] + torch.randn(N_NODES, N_FEAT, generator=g) * torch.linspace(0.5, 2.0, N_FEAT)
    perm = torch.randperm(N_NODES, generator=g)
    train_mask = torch.zeros(N_NODES, dtype=torch.bool)
    val_mask = torch.zeros(N_NODES, dtype=torch.bool)
    train_mask[perm[:300]] = True
    val_mask[perm[300:700]] = True
    return {"x": x, "adj": a_hat, "y": y, "train_mask": train_mask, "val_mask": val_mask}


class OneGraph(Dataset):
    def __init__(self, graph):
        self.graph = graph

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.graph


class GraphConv(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, x, adj):
        return adj @ self.lin(x)


class GCN(L.LightningModule):
    def __init__(self, hidden=16, layers=2, dropout=0.5, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.convs = [GraphConv(N_FEAT if i == 0 else hidden, hidden) for i in range(layers)]
        self.head = nn.Linear(hidden, N_CLASSES)

    def forward(self, x, adj):
        for conv in self.convs:
            x = F.dropout(F.relu(conv(x, adj)), self.hparams.dropout, self.training)
        return self.head(x)

    def _step(self, batch, mask_key):
        x, adj, y, mask = batch["x"][0], batch["adj"][0], batch["y"][0], batch[mask_key][0]
        logits = self(x, adj)
        loss = F.cross_entropy(logits[mask], y[mask])
        acc = (logits[mask].argmax(-1) == y[mask]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, acc = self._step(batch, "train_mask")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch, "val_mask")
        self.log("val_loss", loss)
        self.log("val_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(53)
    loader = DataLoader(OneGraph(make_graph(7)), batch_size=1)
    model = GCN()
    trainer = L.Trainer(max_epochs=120, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="gcn_sbm"), log_every_n_steps=1,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, loader, loader)
    print(f"SYMPTOM val node acc {trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
