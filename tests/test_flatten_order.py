"""loss-input, pattern ``flatten-order-mismatch``, in real Trainer runs: a time-major LSTM's (T, B, C) logits
flattened against batch-major (B, T) labels fire; the same model transposed back to (B, T, C) first, a
batch-first LSTM, and a time-major model with time-major labels stay silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, loader, serious, tagged_tokens
from torch import nn

C, T, V = 5, 12, 20


class Tagger(L.LightningModule):
    def __init__(self, layout):
        super().__init__()
        self.embed, self.head = nn.Embedding(V, 16), nn.Linear(32, C)
        self.lstm = nn.LSTM(16, 32, batch_first=layout == "batch_first")
        self.layout = layout

    def training_step(self, batch, batch_idx):
        ids, tags = batch  # (B, T)
        x = self.embed(ids)
        if self.layout == "batch_first":
            return F.cross_entropy(self.head(self.lstm(x)[0]).reshape(-1, C), tags.reshape(-1))
        logits = self.head(self.lstm(x.transpose(0, 1))[0])  # (T, B, C)
        if self.layout == "time_major_labels":
            return F.cross_entropy(logits.view(-1, C), tags.t().reshape(-1))
        if self.layout == "transposed":
            logits = logits.transpose(0, 1)
        return F.cross_entropy(logits.reshape(-1, C), tags.view(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, layout):
    L.seed_everything(0)
    return fit_report(tmp_path, Tagger(layout), loader(*tagged_tokens(length=T, vocab=V, tags=C), batch_size=16),
                      my_callbacks(), max_epochs=1,
                      limit_train_batches=2, num_sanity_val_steps=0)


def test_time_major_logits_against_batch_major_labels_fire(tmp_path):
    (finding,) = serious(_run(tmp_path, "time_major"), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["source_shape"] == [T, 16, C]
    assert finding["data"]["target_source_shape"] == [16, T] and "transpose(0, 1)" in finding["advice"]


@pytest.mark.parametrize("layout", ["transposed", "batch_first", "time_major_labels"])
def test_matching_flatten_orders_are_silent(tmp_path, layout):
    assert serious(_run(tmp_path, layout), "loss-input") == []
