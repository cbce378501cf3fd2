"""split-overlap on token rows padded to each batch's longest (a collate's dynamic padding): validation sequences that
are also in training are found whatever batch (and so whatever padded width) they came in; a split made once stays
silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary


def _sequences(n: int = 400):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, 40, (n,), generator=g)
    seqs = [torch.randint(1, 500, (int(k),), generator=g) for k in lengths]
    return [(s, int(s[0] % 2)) for s in seqs]


def _collate(items):
    return pad_sequence([s for s, _ in items], batch_first=True, padding_value=0), torch.tensor([y for _, y in items])


class BagOfTokens(LossSteps):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.head = nn.EmbeddingBag(500, 16, padding_idx=0), nn.Linear(16, 2)

    def _loss(self, batch):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.emb(x)), y)


@pytest.mark.parametrize("overlap", [True, False])
def test_dynamically_padded_validation_rows_in_training(tmp_path, overlap):
    data = _sequences()
    train, val = (data, data[320:]) if overlap else (data[:320], data[320:])
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                num_sanity_val_steps=1)
    t.fit(BagOfTokens(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=_collate),
          DataLoader(val, batch_size=50, collate_fn=_collate))
    found = serious(read_report(t.log_dir), "split-overlap")
    assert bool(found) is overlap, found
    if overlap:
        assert found[0]["data"]["share"] == 1.0, found[0]
