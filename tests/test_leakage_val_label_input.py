"""target-leakage on a real Trainer for transductive node classification with the label trick (a one-hot label input,
the predicted half of the training nodes hidden each step): a label input that hides only the test nodes gives the
validation nodes their own labels in validation and fires; one built from the training labels only stays silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _graph(hidden: str) -> dict[str, torch.Tensor]:
    """A two-block stochastic block model with noisy features; nodes 0-119 train, 120-159 validate, the rest test."""
    g = torch.Generator().manual_seed(0)
    n, classes = 200, 4
    y = torch.randint(0, classes, (n,), generator=g)
    same = y[:, None] == y[None, :]
    adjacency = torch.rand(n, n, generator=g) < torch.where(same, 0.08, 0.01)
    edge_index = adjacency.triu(1).nonzero().T
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    x = F.one_hot(y, classes).float() @ torch.randn(classes, 16, generator=g) + 2 * torch.randn(n, 16, generator=g)
    label_input = F.one_hot(y, classes).float()
    label_input[160 if hidden == "test" else 120:] = 0.0
    return {"x": x, "y": y, "edge_index": edge_index, "label_input": label_input,
            "train_idx": torch.arange(120), "val_idx": torch.arange(120, 160)}


class LabelTrickGCN(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(20, 32), nn.Linear(32, 4)

    def propagate(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        loops = torch.arange(h.shape[0])
        src, dst = torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops])
        deg = torch.zeros(h.shape[0]).index_add_(0, dst, torch.ones(dst.numel()))
        return torch.zeros_like(h).index_add_(0, dst, h[src] * (deg[src] * deg[dst]).rsqrt()[:, None])

    def forward(self, x: torch.Tensor, label_input: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.propagate(self.lin1(torch.cat([x, label_input], 1)), edge_index))
        return self.propagate(self.lin2(h), edge_index)

    def training_step(self, batch, batch_idx):
        train = batch["train_idx"]
        hidden = train[torch.randperm(train.numel())[: train.numel() // 2]]
        label_input = batch["label_input"].clone()
        label_input[hidden] = 0.0
        return F.cross_entropy(self(batch["x"], label_input, batch["edge_index"])[hidden], batch["y"][hidden])

    def validation_step(self, batch, batch_idx):
        val = batch["val_idx"]
        logits = self(batch["x"], batch["label_input"], batch["edge_index"])[val]
        self.log("val_loss", F.cross_entropy(logits, batch["y"][val]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=5e-3)


@pytest.mark.parametrize("hidden", ["test", "validation and test"])
def test_label_input_keeping_the_validation_labels_fires(tmp_path, hidden):
    graph = _graph(hidden)
    L.seed_everything(0)
    t = trainer(tmp_path, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(LabelTrickGCN(), DataLoader([graph], batch_size=None), DataLoader([graph], batch_size=None))
    report = read_report(t.log_dir)
    found = serious(report, "target-leakage")
    assert bool(found) is (hidden == "test"), [f["message"] for f in found]
    if found:
        assert found[0]["data"] == {"label_input": "label_input", "label": "y", "validation": "val_idx", "nodes": 40}
