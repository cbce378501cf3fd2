"""Healthy: node classification on one synthetic graph (a 4-community stochastic block model, 400 nodes, noisy
16-d features whose mean depends on the community) with a two-layer single-head graph attention network on the
dense adjacency (self-loops added, attention masked to edges). Every step is the full graph; the loss is taken on
the 20 % training mask only, validation on a disjoint 30 % mask. Final val acc 0.98 (val loss 0.08)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"


def make_sbm(n=400, k=4, p_in=0.06, p_out=0.006, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    adj = (upper | upper.t()).float()
    centres = torch.randn(k, dim, generator=g) * 0.6
    feats = centres[labels] + torch.randn(n, dim, generator=g)
    order = torch.randperm(n, generator=g)
    train_mask = torch.zeros(n, dtype=torch.bool)
    val_mask = torch.zeros(n, dtype=torch.bool)
    train_mask[order[: n // 5]] = True
    val_mask[order[n // 5: n // 5 + (3 * n) // 10]] = True
    return feats, adj, labels, train_mask, val_mask


class FullGraph(Dataset):
    """One item: the whole graph with the mask of the nodes this split is scored on."""

    def __init__(self, feats, adj, labels, mask):
        self.item = {"x": feats, "adj": adj, "y": labels, "mask": mask}

    def __len__(self):
        return 1

    def __getitem__(self, idx):
        return self.item


class GraphAttention(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out, bias=False)
        self.att_src = nn.Parameter(torch.randn(d_out) * 0.1)
        self.att_dst = nn.Parameter(torch.randn(d_out) * 0.1)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x, adj):
        h = self.proj(x)
        scores = F.leaky_relu((h @ self.att_dst)[:, None] + (h @ self.att_src)[None, :], 0.2)
        scores = scores.masked_fill(adj == 0, float("-inf"))
        return torch.softmax(scores, dim=1) @ h + self.bias


class GAT(L.LightningModule):
    def __init__(self, d_in=16, hidden=32, n_classes=4, lr=5e-3, dropout=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.gat1 = GraphAttention(d_in, hidden)
        self.gat2 = GraphAttention(hidden, n_classes)

    def forward(self, x, adj):
        adj = adj + torch.eye(adj.shape[0], device=adj.device)
        h = F.dropout(x, self.hparams.dropout, self.training)
        h = F.elu(self.gat1(h, adj))
        h = F.dropout(h, self.hparams.dropout, self.training)
        return self.gat2(h, adj)

    def _step(self, batch):
        x, adj, y, mask = (batch[k][0] for k in ("x", "adj", "y", "mask"))
        logits = self(x, adj)
        loss = F.cross_entropy(logits[mask], y[mask])
        acc = (logits[mask].argmax(-1) == y[mask]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"train/loss": loss, "train/acc": acc})
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val/loss": loss, "val/acc": acc}, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(17)
    feats, adj, labels, train_mask, val_mask = make_sbm()
    model = GAT()
    trainer = L.Trainer(
        max_epochs=150,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="gat_sbm"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
    )
    trainer.fit(model, DataLoader(FullGraph(feats, adj, labels, train_mask), batch_size=1),
                DataLoader(FullGraph(feats, adj, labels, val_mask), batch_size=1))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val/acc']):.3f} val_loss={float(m['val/loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
