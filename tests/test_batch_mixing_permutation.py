"""batch-mixing by reordering the batch: position ids counted down the batch (`attention_mask.cumsum(0)`) fire;
the same model counting along each row (`cumsum(-1)`), and a model that draws noise in its eval forward, stay
silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


class TinyLM(L.LightningModule):
    def __init__(self, dim: int, noise: bool = False) -> None:
        super().__init__()
        self.dim, self.noise = dim, noise
        self.wte = nn.Embedding(20, 16)
        self.wpe = nn.Embedding(32, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 20)

    def forward(self, input_ids, attention_mask):
        positions = (attention_mask.cumsum(self.dim) - 1).clamp_min(0)
        h = self.wte(input_ids) + self.wpe(positions)
        h = torch.tanh(self.mix(h))
        if self.noise:  # a sampled latent, drawn in eval mode too
            h = h + 0.1 * torch.randn_like(h)
        return self.head(h)

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 20), batch["labels"][:, 1:].reshape(-1),
                                           ignore_index=-100)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _batches():
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 20, (int(torch.randint(4, 12, (1,), generator=g)),), generator=g) for _ in range(64)]

    def collate(rows):  # left padding, as for batched generation
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r):], mask[i, width - len(r):] = r, 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    return DataLoader(seqs, batch_size=16, collate_fn=collate)


@pytest.mark.parametrize("dim, noise, fires", [(0, False, True), (-1, False, False), (-1, True, False)])
def test_position_ids_counted_down_the_batch_fire(tmp_path, dim, noise, fires):
    L.seed_everything(0)
    t = trainer(tmp_path, [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    t.fit(TinyLM(dim, noise), _batches())
    report = read_report(t.log_dir)
    found = serious(report, "batch-mixing")
    assert bool(found) == fires, found
    if fires:
        assert found[0]["data"]["permutation"] and found[0]["data"]["changed_samples"] > found[0]["data"]["samples"] / 2
    else:
        detail = {c["name"]: c for c in report["checks"]}["batch-mixing"]["detail"]
        assert ("reordering the batch changes 0 of" in detail) or noise, detail
