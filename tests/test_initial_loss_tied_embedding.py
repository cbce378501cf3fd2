"""initial-loss and an output layer tied to the input embedding (GPT-2, T5).

``nn.Embedding`` draws its rows from N(0, 1); tied to the output layer, the first logits spread with the square root
of the width and the first loss sits far above ln V. The warning's advice names the tied embedding and the position
embeddings to initialise with it: shrinking the shared weight alone leaves the tokens drowned under N(0, 1)
positions (on the zoo's prefix LM: exact match 0.41 with N(0, 1), 0.00 with only the token table shrunk, 0.65 with
both at std 0.02). Both at std 0.02 start at ln V and stay silent.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary
from tests.helpers import fit_report

VOCAB, WIDTH, LENGTH = 40, 64, 12


class TiedLM(L.LightningModule):
    """Bag-of-positions next-token model whose output layer is ``tok.weight``."""

    def __init__(self, std: float | None) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, WIDTH), nn.Embedding(LENGTH, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)
        if std is not None:
            nn.init.normal_(self.tok.weight, std=std)
            nn.init.normal_(self.pos.weight, std=std)

    def training_step(self, batch, batch_idx):
        (ids,) = batch
        x = ids[:, :-1]
        h = self.norm(self.tok(x) + self.pos(torch.arange(x.shape[1])))
        return F.cross_entropy((h @ self.tok.weight.T).flatten(0, 1), ids[:, 1:].flatten())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("std", [None, 0.02])
def test_tied_embedding_start(tmp_path, std):
    L.seed_everything(0)
    ids = torch.randint(0, VOCAB, (64, LENGTH), generator=torch.Generator().manual_seed(0))
    train = DataLoader(TensorDataset(ids), batch_size=16)
    report = fit_report(tmp_path, TiedLM(std), train, [LossInspector(), SanitySummary(print_summary=False)],
                        max_steps=2)
    found = [f for f in report["findings"] if f["check"] == "initial-loss" and f["severity"] != "info"]
    if std is None:
        assert found and found[0]["data"]["tied_embedding"] == "tok"
        assert "`pos` the same small std" in found[0]["advice"]
    else:
        assert not found
