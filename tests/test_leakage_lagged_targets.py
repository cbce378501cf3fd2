"""target-leakage on real Trainers for teacher forcing with the slices swapped (``dec_in = tgt[:, 1:]``, ``labels =
tgt[:, :-1]``): a causal Transformer decoder and a GRU decoder fire; the same models with the slices the right way
round stay silent, as do a right-to-left decoder fed the swapped slices (it never reads the earlier positions) and
delayed-recall GRUs whose labels are their input three steps back."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_leakage import SEQ, VOCAB, random_tokens
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.lagged_targets import earlier_copy

BOS = VOCAB


def _pairs(n: int = 64) -> DataLoader:
    """Reversal pairs: the target is ``[BOS] + reversed source``."""
    src = random_tokens(n, 0, length=SEQ)
    tgt = torch.cat([torch.full((n, 1), BOS), src.flip(1)], 1)
    return DataLoader(TensorDataset(src, tgt), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


class Reverser(L.LightningModule):
    """Encoder-decoder on :func:`_pairs`, teacher forcing cut in ``training_step``."""

    def __init__(self, decoder: str = "causal", swapped: bool = False) -> None:
        super().__init__()
        self.kind, self.swapped = decoder, swapped
        self.embed = nn.Embedding(VOCAB + 1, 32)
        self.pos = nn.Parameter(torch.randn(SEQ + 1, 32) * 0.02)
        if decoder == "gru":
            self.encoder, self.decoder = nn.GRU(32, 32, batch_first=True), nn.GRU(32, 32, batch_first=True)
        else:
            self.transformer = nn.Transformer(32, 2, 1, 1, 64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(32, VOCAB + 1)

    def forward(self, src: torch.Tensor, dec_in: torch.Tensor) -> torch.Tensor:
        t = dec_in.shape[1]
        if self.kind == "gru":
            _, h = self.encoder(self.embed(src))
            return self.out(self.decoder(self.embed(dec_in), h)[0])
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        mask = mask.T.contiguous() if self.kind == "right-to-left" else mask  # position k reads k and after
        h = self.transformer(self.embed(src) + self.pos[: src.shape[1]], self.embed(dec_in) + self.pos[:t],
                             tgt_mask=mask)
        return self.out(h)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        src, tgt = batch
        dec_in, labels = (tgt[:, 1:], tgt[:, :-1]) if self.swapped else (tgt[:, :-1], tgt[:, 1:])
        return F.cross_entropy(self(src, dec_in).reshape(-1, VOCAB + 1), labels.reshape(-1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _report(tmp_path: Any, model: L.LightningModule, data: DataLoader) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, data, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                      max_steps=3)


@pytest.mark.parametrize("decoder", ["causal", "gru"])
@pytest.mark.parametrize("swapped", [True, False])
def test_swapped_teacher_forcing_slices_fire_the_right_way_round_is_silent(tmp_path, decoder, swapped):
    report = _report(tmp_path, Reverser(decoder, swapped), _pairs())
    found = serious(report, "target-leakage")
    if swapped:
        assert found and found[0]["severity"] == "error" and found[0]["data"]["shift"] == 1
        assert found[0]["data"]["share"] == 1.0 and "tgt[:, :-1], tgt[:, 1:]" in found[0]["advice"]
    else:
        assert not serious(report)
        detail = {c["name"]: c["detail"] for c in report["checks"]}["target-leakage"]
        assert "no decoder input cut from the target holds the labels" in detail


def test_right_to_left_decoder_fed_the_swapped_slices_is_silent(tmp_path):
    # Position k reads the decoder input from k on, which holds the labels after k: a legitimate right-to-left
    # decoder. The labels are at earlier positions of its input, but the outputs never read them there.
    report = _report(tmp_path, Reverser("right-to-left", swapped=True), _pairs())
    assert not serious(report)
    detail = {c["name"]: c["detail"] for c in report["checks"]}["target-leakage"]
    assert "never read it there" in detail


class DelayedRecall(L.LightningModule):
    """A GRU that outputs, at each step, the token it read three steps earlier: a memory benchmark by design.
    With ``cue``, the batch is ``(cue, seq, labels)`` and the model reads the cue beside the sequence."""

    def __init__(self, cue: bool = False) -> None:
        super().__init__()
        self.cue = cue
        self.embed = nn.Embedding(VOCAB, 32)
        self.gru = nn.GRU(32, 48, batch_first=True)
        self.out = nn.Linear(48, VOCAB)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        h = sum(self.embed(p) for p in parts)
        return self.out(self.gru(h)[0])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        *inputs, labels = batch
        return F.cross_entropy(self(*inputs).flatten(0, 1), labels.flatten(), ignore_index=-100)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("cue", [False, True])
def test_delayed_recall_labels_are_the_input_three_steps_back_is_silent(tmp_path, cue):
    seq = random_tokens(64, 1, length=SEQ)
    labels = torch.full_like(seq, -100)
    labels[:, 3:] = seq[:, :-3]
    parts = (random_tokens(64, 2, length=SEQ), seq, labels) if cue else (seq, labels)
    data = DataLoader(TensorDataset(*parts), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    report = _report(tmp_path, DelayedRecall(cue), data)
    assert not serious(report)


def test_earlier_copy_needs_the_labels_earlier_beyond_chance():
    g = torch.Generator().manual_seed(0)
    tgt = torch.randint(3, 23, (16, 12), generator=g)
    assert earlier_copy(tgt[:, :-1], tgt[:, 1:])["shift"] == 1
    assert earlier_copy(tgt[:, :-2], tgt[:, 2:])["shift"] == 2
    assert earlier_copy(tgt[:, 1:], tgt[:, :-1]) is None  # correct teacher forcing: the label comes one later
    # Low-entropy targets: a sequence of one repeated token agrees with any shift of itself.
    runs = torch.randint(3, 23, (16, 1), generator=g).expand(16, 12)
    assert earlier_copy(runs[:, 1:], runs[:, :-1]) is None and earlier_copy(runs[:, :-1], runs[:, 1:]) is None
    # Two tokens at random: the swapped slices still agree everywhere, far above the 50 % chance gives.
    coins = torch.randint(0, 2, (16, 12), generator=g)
    assert earlier_copy(coins[:, :-1], coins[:, 1:])["shift"] == 1
    assert earlier_copy(coins[:, 1:], coins[:, :-1]) is None
    # Padding not ignored: runs of the pad value at the end repeat whatever the alignment.
    padded = tgt.clone()
    padded[:, 4:] = 0
    assert earlier_copy(padded[:, 1:], padded[:, :-1]) is None
    # Too few supervised positions, and float values, prove nothing here.
    assert earlier_copy(tgt[:2, :-1], tgt[:2, 1:]) is None
    assert earlier_copy(tgt[:, :-1].float(), tgt[:, 1:].float()) is None
