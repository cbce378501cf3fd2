"""Bug: transductive node classification on a stochastic block model with the "label trick" (UniMP-style label
reuse). Each node's input is its noisy features concatenated with a one-hot of its label where the label is
known; every training step splits the training nodes at random into "label visible" and "to predict" halves
and zeroes the one-hot of the nodes being predicted, so the two-layer GCN (self-loops included) learns to combine
features with its neighbours' known labels. The message passing is written by hand with `index_add_`.

What is wrong: the label input is built once in `setup()` as `one_hot(y)` with only the *test* nodes zeroed
(the author thought "unknown = test"). The validation nodes keep their own label in the input, so at validation
time every validation node reads its own target through its self-channel and through its neighbours' messages.
Training still looks normal (the training targets are masked per step, loss falls), and validation simply
looks a bit better than it should. Measured: val acc 0.758 (val loss 0.963) with the bug vs 0.708 (1.051)
when the validation labels are zeroed too; the gain is pure leakage, and the validation nodes' label columns
equal their targets exactly.
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout30"


def make_sbm(n=600, k=4, p_in=0.02, p_out=0.006, feat_dim=16, noise=3.0, seed=30):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    prob = torch.where(y[:, None] == y[None, :], p_in, p_out)
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    centers = torch.randn(k, feat_dim, generator=g)
    x = centers[y] + noise * torch.randn(n, feat_dim, generator=g)
    perm = torch.randperm(n, generator=g)
    return x, y, edge_index, perm[:180], perm[180:300], perm[300:]


class SBMLabelTrickData(L.LightningDataModule):
    def setup(self, stage=None):
        x, y, edge_index, train_idx, val_idx, test_idx = make_sbm()
        self.num_classes = int(y.max()) + 1
        label_input = F.one_hot(y, self.num_classes).float()
        label_input[test_idx] = 0.0
        self.graph = {"x": x, "y": y, "edge_index": edge_index, "label_input": label_input,
                      "train_idx": train_idx, "val_idx": val_idx}

    def train_dataloader(self):
        return DataLoader([self.graph], batch_size=None)

    def val_dataloader(self):
        return DataLoader([self.graph], batch_size=None)


class GCNConv(nn.Module):
    """Kipf & Welling propagation D^-1/2 (A + I) D^-1/2 H W, written with index_add_."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)

    def forward(self, h, edge_index):
        n = h.size(0)
        loops = torch.arange(n)
        src = torch.cat([edge_index[0], loops])
        dst = torch.cat([edge_index[1], loops])
        deg = torch.zeros(n).index_add_(0, dst, torch.ones(dst.numel()))
        norm = (deg[src] * deg[dst]).rsqrt()
        h = self.lin(h)
        return torch.zeros_like(h).index_add_(0, dst, h[src] * norm[:, None])


class LabelTrickGNN(L.LightningModule):
    def __init__(self, feat_dim=16, num_classes=4, hidden=64, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = GCNConv(feat_dim + num_classes, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x, label_input, edge_index):
        h = torch.cat([x, label_input], dim=1)
        h = self.dropout(F.relu(self.conv1(h, edge_index)))
        return self.conv2(h, edge_index)

    def training_step(self, batch, batch_idx):
        train_idx = batch["train_idx"]
        shuffled = train_idx[torch.randperm(train_idx.numel())]
        target_idx = shuffled[: train_idx.numel() // 2]
        label_input = batch["label_input"].clone()
        label_input[target_idx] = 0.0
        logits = self(batch["x"], label_input, batch["edge_index"])
        loss = F.cross_entropy(logits[target_idx], batch["y"][target_idx])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        val_idx = batch["val_idx"]
        logits = self(batch["x"], batch["label_input"], batch["edge_index"])[val_idx]
        y = batch["y"][val_idx]
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(30)
    dm = SBMLabelTrickData()
    dm.setup()
    trainer = L.Trainer(max_epochs=150, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LabelTrickGNN(num_classes=dm.num_classes), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
