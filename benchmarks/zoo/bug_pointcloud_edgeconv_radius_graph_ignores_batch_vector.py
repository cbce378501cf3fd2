"""Bug: graph classification of 2-D point clouds (circle, square outline, cross, two blobs; 32 noisy points each,
randomly rotated and scaled, centred at the origin) with a hand-written EdgeConv network: a radius graph connects
points closer than r, messages are MLP([x_i, x_j - x_i]) max-aggregated over neighbours, two layers, then a mean pool
per cloud and a linear head. Clouds are batched PyG-style: node tensors concatenated with a `batch` vector. The
radius graph is built as `torch.cdist(pos, pos) < r` over the whole concatenated batch - the `batch` argument of
`radius_graph` that keeps neighbourhoods inside one cloud was never reproduced - and because every cloud is centred
at the origin, each point also gets dozens of neighbours from the other clouds of the batch. A cloud's prediction
depends on which clouds share its batch.
Symptom: val acc 0.75 vs 0.95 with `adj &= batch[:, None] == batch[None, :]`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout15"
N_PTS, RADIUS = 32, 0.45


def make_cloud(label, g):
    t = torch.rand(N_PTS, generator=g)
    if label == 0:  # circle
        a = 2 * math.pi * t
        p = torch.stack([a.cos(), a.sin()], 1)
    elif label == 1:  # square outline
        side = torch.randint(0, 4, (N_PTS,), generator=g)
        u = 2 * t - 1
        p = torch.stack([torch.where(side < 2, u, torch.where(side == 2, -1.0, 1.0)),
                         torch.where(side < 2, torch.where(side == 0, -1.0, 1.0), u)], 1)
    elif label == 2:  # cross
        u = 2 * t - 1
        horiz = torch.rand(N_PTS, generator=g) < 0.5
        p = torch.stack([torch.where(horiz, u, torch.zeros_like(u)), torch.where(horiz, torch.zeros_like(u), u)], 1)
    else:  # two blobs
        c = torch.where(torch.rand(N_PTS, generator=g) < 0.5, -0.7, 0.7)
        p = torch.stack([c, torch.zeros_like(c)], 1) + 0.2 * torch.randn(N_PTS, 2, generator=g)
    p = p + 0.04 * torch.randn(N_PTS, 2, generator=g)
    ang = float(torch.rand(1, generator=g)) * 2 * math.pi
    rot = torch.tensor([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    scale = 0.8 + 0.4 * float(torch.rand(1, generator=g))
    p = scale * p @ rot.T
    return p - p.mean(0)


class Clouds(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 4, (n,), generator=g)
        self.pos = [make_cloud(int(c), g) for c in self.y]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.pos[i], self.y[i]


def collate(items):
    pos = torch.cat([p for p, _ in items])
    batch = torch.cat([torch.full((len(p),), k) for k, (p, _) in enumerate(items)])
    return pos, batch, torch.stack([y for _, y in items])


class EdgeConv(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))

    def forward(self, x, edge_index):
        src, dst = edge_index
        msg = self.mlp(torch.cat([x[dst], x[src] - x[dst]], -1))
        out = torch.full((x.shape[0], msg.shape[1]), float("-inf")).scatter_reduce(
            0, dst[:, None].expand_as(msg), msg, reduce="amax")
        return F.relu(out)


class PointCloudNet(L.LightningModule):
    def __init__(self, d=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv1, self.conv2 = EdgeConv(2, d), EdgeConv(d, d)
        self.head = nn.Linear(d, 4)

    def forward(self, pos, batch):
        adj = torch.cdist(pos, pos) < RADIUS  # includes self loops, so every node has a neighbour
        dst, src = adj.nonzero(as_tuple=True)
        edge_index = torch.stack([src, dst])
        h = self.conv2(self.conv1(pos, edge_index), edge_index)
        n_graphs = int(batch.max()) + 1
        pooled = torch.zeros(n_graphs, h.shape[1]).index_add_(0, batch, h) / N_PTS
        return self.head(pooled)

    def training_step(self, b, batch_idx):
        pos, batch, y = b
        loss = F.cross_entropy(self(pos, batch), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, b, batch_idx):
        pos, batch, y = b
        logits = self(pos, batch)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()},
                      prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    train_ds, val_ds = Clouds(800, 1), Clouds(200, 2)
    train_dl = DataLoader(train_ds, batch_size=16, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(val_ds, batch_size=16, collate_fn=collate)
    model = PointCloudNet()
    trainer = L.Trainer(max_epochs=8, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="pointcloud_edgeconv"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    correct = 0
    with torch.no_grad():
        for pos, batch, y in val_dl:
            correct += (model(pos, batch).argmax(1) == y).sum().item()
    print(f"SYMPTOM val_acc={correct / len(val_ds):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
