"""target-leakage on a real Trainer for an HF-style encoder-decoder whose encoder input ends with the answer: the
collate of a decoder-only script (``input_ids = source + [SEP] + target``) beside ``labels = target + [EOS]``
fires; the source alone stays silent, and so does a decoder-only model fed the same ``source [SEP] target`` rows
with labels of the input's shape (its answer belongs at the end of its input)."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary

VOCAB, PAD, SEP, EOS, BOS = 40, 0, 1, 2, 3


def _rows(format: str, n: int = 64) -> list[dict[str, torch.Tensor]]:
    """Keyword extraction with a learnable rule: the answer is the source's tokens of 30 and above, in order."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        src = torch.randint(4, VOCAB, (int(torch.randint(6, 11, (1,), generator=g)),), generator=g).tolist()
        answer = [t for t in src if t >= 30][:4] or [src[0]]
        ids = src + [SEP] + answer if format != "source" else src
        labels = answer + [EOS]
        if format == "decoder-only":
            ids, labels = ids + [EOS], [-100] * (len(src) + 1) + labels
        rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)})
    return rows


def _collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    ids = nn.utils.rnn.pad_sequence([r["input_ids"] for r in rows], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([r["labels"] for r in rows], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class Seq2Seq(L.LightningModule):
    """``model(**batch)`` with the loss inside; the decoder is fed ``labels`` shifted right."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.pos = nn.Embedding(VOCAB, 32), nn.Parameter(torch.randn(32, 32) * 0.02)
        self.transformer = nn.Transformer(32, 2, 1, 1, 64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        decoder_ids = torch.cat([torch.full_like(labels[:, :1], BOS), labels[:, :-1]], 1).clamp(min=0)
        t = decoder_ids.shape[1]
        h = self.transformer(self.embed(input_ids) + self.pos[:input_ids.shape[1]],
                             self.embed(decoder_ids) + self.pos[:t],
                             tgt_mask=nn.Transformer.generate_square_subsequent_mask(t), tgt_is_causal=True,
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0)
        return self.out(h)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self(**batch).flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


class DecoderOnly(L.LightningModule):
    """A causal Transformer over ``source [SEP] answer [EOS]``, scored on the answer (prompt labels -100)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.pos = nn.Embedding(VOCAB, 32), nn.Parameter(torch.randn(32, 32) * 0.02)
        self.body = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True), 1)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        return self.out(self.body(self.embed(input_ids) + self.pos[:t], mask=mask, is_causal=True))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])[:, :-1]
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("format", ["source [SEP] target", "source", "decoder-only"])
def test_encoder_input_ending_with_the_answer_fires(tmp_path, format):
    L.seed_everything(0)
    model = DecoderOnly() if format == "decoder-only" else Seq2Seq()
    data = DataLoader(_rows(format), batch_size=16, collate_fn=_collate)
    report = fit_report(tmp_path, model, data, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                        max_steps=3)
    found = serious(report, "target-leakage")
    if format == "source [SEP] target":
        assert found and found[0]["severity"] == "error" and found[0]["data"]["separator"] == SEP
        assert found[0]["data"]["rows"] == 16 and "labels" in found[0]["advice"]
    else:
        assert not serious(report)
