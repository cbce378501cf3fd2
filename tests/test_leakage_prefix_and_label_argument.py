"""causal-leakage for prompt-masked next-token batches (a prefix LM whose prefix mask reads the attention mask) and
target-leakage for a model call handed the label its head is scored against (a CVAE encoder feeding a classifier),
each with a healthy twin, on real Trainers."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.answer_span import answer_cut

SEP, VOCAB = 1, 12


def _reversals(n: int = 64) -> DataLoader:
    """``prompt SEP reversed-prompt`` with labels on the answer only, prompts of 3 to 6 digits, right-padded."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        p = torch.randint(2, VOCAB, (int(torch.randint(3, 7, (1,), generator=g)),), generator=g)
        rows.append((torch.cat([p, torch.tensor([SEP]), p.flip(0)]), len(p) + 1))
    t = max(len(r) for r, _ in rows)
    ids, types, att = torch.zeros(n, t, dtype=torch.long), torch.zeros(n, t, dtype=torch.long), torch.zeros(n, t)
    for i, (r, k) in enumerate(rows):
        ids[i, :len(r)], types[i, k:len(r)], att[i, :len(r)] = r, 1, 1
    labels = torch.where(types == 1, ids, torch.full_like(ids, -100))
    data = [{"input_ids": a, "attention_mask": b.long(), "token_type_ids": c, "labels": d}
            for a, b, c, d in zip(ids, att, types, labels)]
    return DataLoader(data, batch_size=32)


class PrefixLM(L.LightningModule):
    """A one-layer prefix LM; ``leak`` takes the prefix from ``attention_mask`` instead of ``token_type_ids``."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.leak = leak
        self.tok, self.pos = nn.Embedding(VOCAB, 32), nn.Embedding(32, 32)
        self.attn = nn.MultiheadAttention(32, 2, batch_first=True)
        self.head = nn.Linear(32, VOCAB)

    def forward(self, input_ids, attention_mask, token_type_ids, labels=None) -> dict:
        t = input_ids.shape[1]
        prefix = attention_mask.bool() if self.leak else (token_type_ids == 0) & attention_mask.bool()
        allowed = torch.ones(t, t, dtype=torch.bool).tril()[None] | prefix[:, None, :]
        allowed = (allowed & attention_mask.bool()[:, None, :]) | torch.eye(t, dtype=torch.bool)[None]
        x = self.tok(input_ids) + self.pos(torch.arange(t))
        h = x + self.attn(x, x, x, attn_mask=(~allowed).repeat_interleave(2, 0), need_weights=False)[0]
        logits = self.head(h)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self(**batch)["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("leak", [True, False])
def test_prefix_lm_reading_its_answer_fires_correct_prefix_lm_is_silent(tmp_path, leak):
    L.seed_everything(0)
    report = fit_report(tmp_path, PrefixLM(leak), _reversals(), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "causal-leakage")
    if leak:
        assert found and found[0]["severity"] == "error" and found[0]["data"]["samples"] > 0, report["findings"]
    else:
        assert not serious(report), report["findings"]
        assert {c["name"]: c for c in report["checks"]}["causal-leakage"]["status"] == "pass"


def test_answer_cut_needs_one_supervised_run_after_a_prompt():
    ids = torch.arange(2, 12).repeat(4, 1)
    span = torch.where(torch.arange(10) >= 5, ids, torch.full_like(ids, -100))
    assert answer_cut(ids, span)[0] == 5 and bool(answer_cut(ids, span)[1].all())
    scattered = torch.where(torch.arange(10) % 3 == 1, ids, torch.full_like(ids, -100))  # a masked LM's labels
    assert answer_cut(ids, scattered) is None
    assert answer_cut(ids, torch.where(span >= 0, span + 1, span)) is None  # labels that are not the inputs


class CVAEClassifier(L.LightningModule):
    """A VAE on 16 features whose latent mean feeds a classifier; ``leak``: the encoder reads ``one_hot(y)`` too (a
    conditional VAE's encoder), else only the decoder does (a semi-supervised VAE)."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.leak = leak
        self.enc, self.dec = nn.Linear(16 + 4, 8), nn.Linear(4 + 4, 16)
        self.classifier = nn.Linear(4, 4)

    def forward(self, x, y1):
        h = self.enc(torch.cat([x, y1 if self.leak else torch.zeros_like(y1)], 1))
        mu, logvar = h[:, :4], h[:, 4:].clamp(-6, 6)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(torch.cat([z, y1], 1)), mu, logvar, self.classifier(mu)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        recon, mu, logvar, logits = self(x, F.one_hot(y, 4).float())
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        return F.mse_loss(recon, x) + 0.1 * kl + F.cross_entropy(logits, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _blobs() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (512,), generator=g)
    x = torch.randn(512, 16, generator=g) + 0.5 * F.one_hot(y, 16).float()  # a weak class signal in x
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)


@pytest.mark.parametrize("leak", [True, False])
def test_classifier_reading_its_label_argument_fires_m2_is_silent(tmp_path, leak):
    L.seed_everything(0)
    report = fit_report(tmp_path, CVAEClassifier(leak), _blobs(), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_epochs=3)
    found = serious(report, "target-leakage")
    if leak:
        assert found and found[0]["data"]["form"] == "onehot" and found[0]["data"]["towards"] > 0, report["findings"]
    else:
        assert not serious(report, "target-leakage"), report["findings"]
        assert "do not follow the label" in {c["name"]: c for c in report["checks"]}["target-leakage"]["detail"]
