"""loss-input on a sequence tagger in real Trainer runs: (B, T, C) logits turned into (B, C, T) with `view` (the
sizes reordered by a reshape, values scrambled) fire; `transpose(1, 2)`, `reshape(-1, C)` with the flattened
target, and a regression whose prediction and target are reshaped alike stay silent."""

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
        self.embed, self.head = nn.Embedding(V, 16), nn.Linear(16, C)
        self.layout = layout

    def training_step(self, batch, batch_idx):
        ids, tags = batch
        logits = self.head(self.embed(ids))  # (B, T, C)
        B = ids.shape[0]
        if self.layout == "view":
            return F.cross_entropy(logits.view(B, C, T), tags)
        if self.layout == "transpose":
            return F.cross_entropy(logits.transpose(1, 2), tags)
        if self.layout == "flat":
            return F.cross_entropy(logits.reshape(-1, C), tags.reshape(-1))
        target = F.one_hot(tags, C).float()  # "alike": both reshaped the same way, pairs unchanged
        return F.mse_loss(logits.reshape(B, C, T), target.reshape(B, C, T))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, layout):
    L.seed_everything(0)
    return fit_report(tmp_path, Tagger(layout), loader(*tagged_tokens(length=T, vocab=V, tags=C), batch_size=16),
                      my_callbacks(), max_epochs=1,
                      limit_train_batches=2, num_sanity_val_steps=0)


def test_logits_viewed_into_permuted_sizes_fire(tmp_path):
    (finding,) = serious(_run(tmp_path, "view"), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["source_shape"] == [16, T, C]
    assert finding["data"]["prediction_shape"] == [16, C, T] and "permute(0, 2, 1)" in finding["advice"]


@pytest.mark.parametrize("layout", ["transpose", "flat", "alike"])
def test_transposed_flattened_or_reshaped_alike_is_silent(tmp_path, layout):
    assert serious(_run(tmp_path, layout), "loss-input") == []
