"""batch-mixing by running half the batch alone: masked mean pooling divided by the whole batch's token count
(`mask.sum()`) fires; the per-sample count (`mask.sum(1)`), with or without a Transformer layer (batched kernels
round off differently on another batch size), and a model that draws noise in its eval forward stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


class MeanPooled(L.LightningModule):
    def __init__(self, per_sample: bool, encoder: bool = False, noise: bool = False) -> None:
        super().__init__()
        self.per_sample, self.noise = per_sample, noise
        self.emb = nn.Embedding(20, 16, padding_idx=0)
        self.encoder = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True) if encoder else None
        self.head = nn.Linear(16, 3)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids)
        if self.encoder is not None:
            h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        count = m.sum(1) if self.per_sample else m.sum()
        pooled = (h * m).sum(1) / count
        if self.noise:  # a sampled latent, drawn in eval mode too
            pooled = pooled + 0.1 * torch.randn_like(pooled)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        return nn.functional.cross_entropy(logits, batch["labels"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _batches():
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 20, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g) for _ in range(64)]

    def collate(rows):  # right padding to the longest text of the batch
        ids = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": ids[:, 0] % 3}

    return DataLoader(seqs, batch_size=16, collate_fn=collate)


@pytest.mark.parametrize("per_sample, encoder, noise, fires", [
    (False, False, False, True), (False, True, False, True), (True, False, False, False), (True, True, False, False),
    (True, False, True, False)])
def test_mean_pooled_over_the_batch_token_count_fires(tmp_path, per_sample, encoder, noise, fires):
    L.seed_everything(0)
    t = trainer(tmp_path, [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    t.fit(MeanPooled(per_sample, encoder, noise), _batches())
    report = read_report(t.log_dir)
    found = serious(report, "batch-mixing")
    assert bool(found) == fires, found
    if fires:
        assert found[0]["data"]["subbatch"] and found[0]["data"]["changed_samples"] == found[0]["data"]["samples"]
    elif not noise:
        detail = {c["name"]: c for c in report["checks"]}["batch-mixing"]["detail"]
        assert "running half the batch alone changes 0 of" in detail, detail
