"""causal-leakage on a real Trainer for an encoder-decoder `nn.Transformer` trained with teacher forcing, its
decoder input (the target shifted right) built inside `training_step`: without `tgt_mask` the decoder reads later
decoder inputs, which are the targets, and fires; with the causal `tgt_mask` it stays silent, as does a GRU
decoder fed the same shifted input. An HF-style model that builds `decoder_input_ids` from `labels` inside `forward`
(targets shorter than sources) fires when it shifts them left, and stays silent shifting right."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_leakage import SEQ, VOCAB, reverse_loader
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


class Translator(L.LightningModule):
    def __init__(self, decoder: str = "masked") -> None:
        super().__init__()
        self.kind, self.bos = decoder, VOCAB
        self.src_embed, self.tgt_embed = nn.Embedding(VOCAB + 1, 32), nn.Embedding(VOCAB + 1, 32)
        self.pos = nn.Parameter(torch.randn(SEQ, 32) * 0.02)
        if decoder == "gru":
            self.encoder, self.decoder = nn.GRU(32, 32, batch_first=True), nn.GRU(32, 32, batch_first=True)
        else:
            self.transformer = nn.Transformer(32, 2, 1, 1, 64, dropout=0.0, batch_first=True)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, src: torch.Tensor, decoder_input: torch.Tensor) -> torch.Tensor:
        t = decoder_input.shape[1]
        if self.kind == "gru":
            _, h = self.encoder(self.src_embed(src))
            return self.out(self.decoder(self.tgt_embed(decoder_input), h)[0])
        mask = nn.Transformer.generate_square_subsequent_mask(t) if self.kind == "masked" else None
        h = self.transformer(self.src_embed(src) + self.pos, self.tgt_embed(decoder_input) + self.pos[:t],
                             tgt_mask=mask, tgt_is_causal=mask is not None)
        return self.out(h)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        src, tgt = batch
        decoder_input = torch.cat([torch.full_like(tgt[:, :1], self.bos), tgt[:, :-1]], dim=1)
        return F.cross_entropy(self(src, decoder_input).flatten(0, 1), tgt.flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("decoder", ["unmasked", "masked", "gru"])
def test_decoder_without_tgt_mask_fires(tmp_path, decoder):
    L.seed_everything(0)
    report = fit_report(tmp_path, Translator(decoder), reverse_loader(64), [LeakageChecks(),
                        SanitySummary(print_summary=False)], logger=None, max_steps=4)
    found = serious(report, "causal-leakage")
    checks = {c["name"]: c for c in report["checks"]}
    if decoder == "unmasked":
        assert found and found[0]["severity"] == "error" and "tgt_mask" in found[0]["advice"]
        assert found[0]["data"]["perturbed_after"] == (SEQ - 1) // 2
    else:
        assert not serious(report)
        assert checks["causal-leakage"]["status"] == "pass" and "decoder" in checks["causal-leakage"]["detail"]


class CollatedTranslator(Translator):
    """The same decoders, fed a ``(src, decoder_input, tgt)`` batch: the shifted decoder input is made with the data,
    and the second part of the batch is an input, not the target."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        src, decoder_input, tgt = batch
        return F.cross_entropy(self(src, decoder_input).flatten(0, 1), tgt.flatten())


@pytest.mark.parametrize("decoder", ["unmasked", "masked"])
def test_decoder_input_made_with_the_data_is_found_by_the_loss_target(tmp_path, decoder):
    src, tgt = (torch.cat(part) for part in zip(*reverse_loader(64)))
    decoder_input = torch.cat([torch.full_like(tgt[:, :1], VOCAB), tgt[:, :-1]], dim=1)
    data = DataLoader(TensorDataset(src, decoder_input, tgt), batch_size=16)
    L.seed_everything(0)
    report = fit_report(tmp_path, CollatedTranslator(decoder), data, [LeakageChecks(),
                        SanitySummary(print_summary=False)], logger=None, max_steps=3)
    # The decoder input is the loss target shifted right: causal-leakage's decoder test runs on it (it used to take
    # the second part for the target, and report a correctly masked decoder as fed its target unshifted).
    assert not serious(report, "target-leakage")
    assert bool(serious(report, "causal-leakage")) is (decoder == "unmasked")


class HFStyleSeq2Seq(Translator):
    """Dict batches; ``decoder_input_ids`` built inside ``forward`` from ``labels`` (shorter than the source), shifted
    right (healthy) or, with the concatenation on the wrong side, left: position t is then fed label t + 1."""

    def __init__(self, shift: str) -> None:
        super().__init__("masked")
        self.shift = shift

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(labels[:, :1], self.bos)
        if self.shift == "right":
            decoder_input_ids = torch.cat([start, labels[:, :-1]], dim=1)
        else:
            decoder_input_ids = torch.cat([labels[:, 1:], start], dim=1)
        return super().forward(input_ids, decoder_input_ids)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits = self(**batch)
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())


@pytest.mark.parametrize("shift", ["right", "left"])
def test_labels_shifted_the_wrong_way_inside_forward_fire(tmp_path, shift):
    src, tgt = (torch.cat(part) for part in zip(*reverse_loader(64)))
    rows = [{"input_ids": s, "labels": t[: SEQ // 2]} for s, t in zip(src, tgt)]  # targets shorter than sources
    data = DataLoader(rows, batch_size=16)
    L.seed_everything(0)
    report = fit_report(tmp_path, HFStyleSeq2Seq(shift), data, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=3)
    found = serious(report, "target-leakage")
    assert bool(found) is (shift == "left")
    if found:
        assert found[0]["data"]["length"] == SEQ // 2 and "wrong way" in found[0]["message"]
