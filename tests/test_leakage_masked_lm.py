"""target-leakage on a HuggingFace-style masked LM: labels kept at every position (most targets are the token the
model reads there) fire once the model has learned to copy; labels only at the masked positions, with BERT's
80/10/10 recipe, stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from _models_leakage import VOCAB, HFStyleLM, motif_tokens
from helpers import fit_report, serious
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.leakage import copied_positions

MASK = VOCAB - 1


def _collate(every_position: bool):
    g = torch.Generator().manual_seed(0)

    def collate(seqs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = torch.stack(seqs)
        draw = torch.rand(ids.shape, generator=g)
        chosen = draw < 0.15
        inputs = ids.masked_fill(draw < 0.12, MASK)  # 80 % of the chosen masked, 10 % random, 10 % kept
        swap = (draw >= 0.12) & (draw < 0.135)
        inputs = torch.where(swap, torch.randint(0, MASK, ids.shape, generator=g), inputs)
        labels = ids.clone() if every_position else ids.masked_fill(~chosen, -100)
        return {"input_ids": inputs, "attention_mask": torch.ones_like(ids), "labels": labels}

    return collate


@pytest.mark.parametrize("every_position", [True, False])
def test_masked_lm_with_labels_on_every_position_fires(tmp_path, every_position):
    seqs = motif_tokens(256, 0, vocab=MASK)
    train = DataLoader(list(seqs), batch_size=32, shuffle=True, collate_fn=_collate(every_position),
                       generator=torch.Generator().manual_seed(0))
    model = HFStyleLM(causal=False, shift=False, lr=1e-2)  # bidirectional, each position scored on its own label
    L.seed_everything(0)
    report = fit_report(tmp_path, model, train, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_epochs=3)
    found = serious(report, "target-leakage")
    if every_position:
        assert found and found[0]["data"]["copied_share"] > 0.8 and "-100" in found[0]["advice"]
    else:
        assert not serious(report)


def test_copied_positions_needs_most_supervised_targets_to_be_the_input():
    ids = torch.arange(20).reshape(2, 10)
    masked = ids.clone()
    masked[:, :3] = 99
    assert copied_positions(masked, ids).sum() == 14  # 70 % copied
    masked[:, :6] = 99
    assert copied_positions(masked, ids) is None  # 40 %
    assert copied_positions(ids, ids) is None  # all: the same-positions task
    assert copied_positions(ids.float(), ids.float()) is None
