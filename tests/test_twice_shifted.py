"""loss-input: next-token labels shifted by the user and again by the model (the model learns to skip a token).

Also: a ``forward(self, **batch)`` wrapper around an HuggingFace-style model is called with the batch's inputs,
so the fixed-batch checks run on it instead of being skipped.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from _models_leakage import HFStyleLM, motif_tokens
from helpers import fit, read_report, serious
from torch.utils.data import DataLoader, Dataset


class _Tokens(Dataset):
    """Dict samples; ``preshift`` gives ``labels = input_ids`` shifted left by one (last label ignored)."""

    def __init__(self, seq: torch.Tensor, preshift: bool) -> None:
        self.seq, self.preshift = seq, preshift

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.seq[i]
        labels = torch.cat([ids[1:], ids.new_tensor([-100])]) if self.preshift else ids.clone()
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


class _WrappedLM(HFStyleLM):
    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        return self(**batch).loss


@pytest.mark.parametrize("preshift", [True, False], ids=["labels-shifted-twice", "labels-equal-input-ids"])
def test_labels_shifted_by_the_user_and_the_model(tmp_path, preshift):
    L.seed_everything(0)
    train = DataLoader(_Tokens(motif_tokens(64, 0), preshift), batch_size=16, shuffle=True)
    report = read_report(fit(_WrappedLM(), tmp_path, train, max_epochs=1).log_dir)
    found = [f for f in serious(report, "loss-input") if f["data"].get("shift") == 2]
    if not preshift:
        assert not serious(report, "loss-input"), serious(report)
        assert not found
    else:
        (finding,) = found
        assert "t + 2" in finding["message"] and "labels = input_ids" in finding["advice"]
    # forward(**batch) takes the batch's inputs (labels left out): the fixed-batch checks run
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["constant-output"] != "skipped" and statuses["batch-mixing"] != "skipped", statuses
