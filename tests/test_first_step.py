"""A gradient explosion at step 0: no step before it to compare with, judged by what its update did."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, loader, read_report, serious
from torch import nn

_VOCAB, _SEQ, _CLASSES = 20, 40, 4


def _sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(_CLASSES, _VOCAB, (n, _SEQ), generator=g)
    y = torch.randint(0, _CLASSES, (n,), generator=g)
    tokens[:, 0] = y  # the class is the first token: the RNN must carry it to the end
    return tokens, y


class _RNNClassifier(L.LightningModule):
    def __init__(self, gain):
        super().__init__()
        self.embed = nn.Embedding(_VOCAB, 16)
        self.rnn = nn.RNN(16, 32, batch_first=True)
        if gain:
            nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)  # spectral radius `gain`
        self.head = nn.Linear(32, _CLASSES)

    def forward(self, tokens):
        _, h = self.rnn(self.embed(tokens))
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("gain", [3.0, None])
def test_rnn_exploding_at_step_zero_is_a_spike(tmp_path, gain):
    L.seed_everything(0)
    x, y = _sequences(640, 0)
    report = read_report(fit(_RNNClassifier(gain), tmp_path, loader(x, y, batch_size=32), max_epochs=1).log_dir)
    found = serious(report, "exploding-gradient")
    if gain is None:  # default initialisation: its first gradient is the largest, but its update is small
        assert not found, found
        return
    (spike,) = found
    assert spike["data"]["kind"] == "spike" and spike["global_step"] == 0, spike
    assert spike["data"]["first_step_update_ratio"] >= 1 and "first step" in spike["message"]
