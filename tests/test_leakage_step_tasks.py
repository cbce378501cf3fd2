"""Leakage tasks the batch alone does not show: a batch of one series cut in ``training_step`` into the model's input
``x[:, :-1]`` and the loss target ``x[:, 1:]`` (a Transformer forecaster without its causal mask leaks, with it is
silent), and a ``(x_cat, x_num, y)`` batch whose integer categories hold the target's decile (a stratified split's
bin left among the features), found by the loss's target and the monotone-column rule."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import diabetes, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.leakage import split_positions
from lightning_sanity.checks.label_order import chance_monotone, monotone_columns
from lightning_sanity.forward import model_calls

LEAKS = ("causal-leakage", "target-leakage")


def _status(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"] if c["name"] in LEAKS}


def _fit(tmp_path, model, train) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, model, train, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None,
                      max_steps=3)


# --------------------------------------------------------------------------- next step cut in training_step


class StepForecaster(L.LightningModule):
    """Transformer-encoder forecaster on ``(series,)`` batches: the step feeds ``x[:, :-1]`` and scores ``x[:, 1:]``."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.inp = nn.Linear(1, 16)
        self.pos = nn.Parameter(torch.randn(32, 16) * 0.1)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t) if self.causal else None
        h = self.encoder(self.inp(x[..., None]) + self.pos[:t], mask=mask, is_causal=self.causal)
        return self.head(h)[..., 0]

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return F.mse_loss(self(x[:, :-1]), x[:, 1:])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _series(n: int = 64, length: int = 21) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length).float()
    s = torch.sin(2 * math.pi * t / (torch.rand(n, 1, generator=g) * 8 + 4) + torch.rand(n, 1, generator=g) * 6)
    s = s + 0.2 * torch.randn(n, length, generator=g)
    return DataLoader(TensorDataset(s), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("causal", [False, True])
def test_next_step_cut_in_training_step(tmp_path, causal):
    report = _fit(tmp_path, StepForecaster(causal), _series())
    found = serious(report, "causal-leakage")
    if causal:
        assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    else:
        assert found and found[0]["severity"] == "error" and found[0]["data"]["length"] == 20


class QuantileConvForecaster(L.LightningModule):
    """Conv1d forecaster of three quantiles trained with the pinball loss, a loss the suite does not recognise: the
    step feeds ``x[:, :-1]`` and compares with ``x[:, 1:]``. ``same`` pads both sides (position t reads t + 1 and
    t + 2); otherwise the padding is on the left only (causal)."""

    def __init__(self, same: bool) -> None:
        super().__init__()
        self.pad = (1, 1) if same else (2, 0)
        self.conv = nn.Conv1d(1, 8, 3)
        self.head = nn.Conv1d(8, 3, 1)
        self.register_buffer("q", torch.tensor([0.1, 0.5, 0.9]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(F.pad(x[:, None], self.pad)))).transpose(1, 2)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        diff = x[:, 1:, None] - self(x[:, :-1])
        return torch.maximum(self.q * diff, (self.q - 1) * diff).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("same", [True, False])
def test_next_step_cut_in_training_step_with_a_custom_loss(tmp_path, same):
    report = _fit(tmp_path, QuantileConvForecaster(same), _series())
    found = serious(report, "causal-leakage")
    if same:
        assert found and found[0]["data"]["length"] == 20
    else:
        assert _status(report)["causal-leakage"] == "pass" and not found


class PooledUNetForecaster(L.LightningModule):
    """1-D U-Net on ``(series,)`` batches; the step feeds ``x[:, None, :-1]`` (a channel axis added) and scores
    ``x[:, None, 1:]``. Its convolutions are left-padded, but an ``avg_pool1d`` by 2 then nearest upsampling hands
    position 2j the mean of 2j and 2j + 1: the next element. ``shift`` moves the coarse path one block right first
    (position 2j then sees blocks up to j - 1 only): causal."""

    def __init__(self, shift: bool) -> None:
        super().__init__()
        self.shift = shift
        self.enc = nn.Conv1d(1, 8, 3)
        self.mid = nn.Conv1d(8, 8, 3)
        self.dec = nn.Conv1d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = torch.tanh(self.enc(F.pad(x, (2, 0))))
        coarse = torch.tanh(self.mid(F.pad(F.avg_pool1d(skip, 2), (2, 0))))
        if self.shift:
            coarse = F.pad(coarse, (1, 0))[..., :-1]
        up = F.interpolate(coarse, scale_factor=2, mode="nearest")
        return self.dec(torch.cat([skip, up], 1))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return F.mse_loss(self(x[:, None, :-1]), x[:, None, 1:])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("shift", [False, True])
def test_pooled_path_of_a_forecaster_fed_a_view_with_a_channel_axis(tmp_path, shift):
    report = _fit(tmp_path, PooledUNetForecaster(shift), _series(length=33))
    if shift:
        assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    else:
        found = serious(report, "causal-leakage")
        # Found at the second boundary, after an odd number of elements: inside a pooled block, where the leak shows.
        assert found and found[0]["data"]["length"] == 32 and found[0]["data"]["perturbed_after"] == 14
    assert [split_positions(n) for n in (64, 65, 2, 1)] == [(31, 30), (32, 31), (0,), (0,)]


class MaskedBatchLM(L.LightningModule):
    """Character LM on ``(x, noise_mask)`` batches (minGPT style): the second part is a mask, not the target; the
    step scores ``self(x[:, :-1])`` against ``x[:, 1:].reshape(-1)``. A bidirectional GRU reads the next token."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(12, 16)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=not causal)
        self.head = nn.Linear(16 if causal else 32, 12)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.emb(idx))[0])

    def training_step(self, batch, batch_idx):
        x, _ = batch
        return F.cross_entropy(self(x[:, :-1]).reshape(-1, 12), x[:, 1:].reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("causal", [False, True])
def test_next_token_cut_in_training_step_with_a_mask_in_the_batch(tmp_path, causal):
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 12, (64, 1), generator=g) + torch.arange(16)) % 12
    mask = torch.rand(64, 16, generator=g) < 0.75
    report = _fit(tmp_path, MaskedBatchLM(causal), DataLoader(TensorDataset(x, mask), batch_size=16))
    if causal:
        assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    else:
        found = serious(report, "causal-leakage")
        assert found and found[0]["severity"] == "error" and found[0]["data"]["length"] == 15


# --------------------------------------------------------------------------- the target's bins among the categories


class EmbeddingMLP(L.LightningModule):
    """One embedding per integer category, concatenated with the numeric features; ``forward(x_cat, x_num)``."""

    def __init__(self, cards: list[int], numeric: int) -> None:
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(c, 4) for c in cards])
        self.mlp = nn.Sequential(nn.Linear(4 * len(cards) + numeric, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x_cat, x_num):
        return self.mlp(torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embs)] + [x_num], 1))[:, 0]

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        return F.huber_loss(self(x_cat, x_num), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


def _bins(v: torch.Tensor, k: int) -> torch.Tensor:
    return torch.bucketize(v.contiguous(), v.quantile(torch.linspace(0, 1, k + 1)[1:-1]))


def _tabular(leak: bool) -> tuple[DataLoader, list[int]]:
    x, y = diabetes()
    y = (y - y.mean()) / y.std()
    # Ordinal categories that carry the target's signal (bmi and s5 deciles correlate ~0.5 with it), and sex.
    cats = [_bins(x[:, 0], 5), (x[:, 1] > 0).long(), _bins(x[:, 2], 10), _bins(x[:, 8], 10)]
    if leak:
        cats.append(_bins(y, 10))  # the decile kept for a stratified split, integer like the real categories
    x_cat = torch.stack(cats, 1)
    x_num = x[:, [3, 4, 5, 6, 7, 9]]
    train = DataLoader(TensorDataset(x_cat, x_num, y), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    return train, [int(c.max()) + 1 for c in cats]


@pytest.mark.parametrize("leak", [False, True])
def test_target_decile_among_integer_categories(tmp_path, leak):
    train, cards = _tabular(leak)
    report = _fit(tmp_path, EmbeddingMLP(cards, 6), train)
    found = serious(report, "target-leakage")
    if leak:
        assert found and found[0]["severity"] == "error" and found[0]["data"]["how"] == "monotone"
        assert found[0]["where"] == "batch[0] column 4"
    else:
        assert _status(report)["target-leakage"] == "pass"


def test_fixed_batch_calls_every_part_but_the_target():
    train, cards = _tabular(False)
    batch = next(iter(train))
    calls = model_calls(EmbeddingMLP(cards, 6), batch[0], batch)
    assert [c.how for c in calls] == ["pl_module(*batch[:-1])"] and calls[0]().shape == (64,)


def test_monotone_chance_bound_handles_ties_and_few_targets():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(64, generator=g)
    # Four distinct targets: a four-level column ordered by them is within chance (tied rows order freely).
    few = torch.tensor([0.5, 1.5, 2.5, 3.5]).repeat_interleave(16)
    assert monotone_columns(few[:, None].clone(), few) == []
    assert chance_monotone(torch.tensor([16] * 4), torch.tensor([16] * 4)) == 1.0
    # A strong ordinal feature with noise is not ordered on every pair; its bins of the target are.
    feature = _bins(y + 0.3 * torch.randn(64, generator=g), 5).float()
    assert monotone_columns(torch.stack([feature, _bins(y, 5).float()], 1), y) == [1]
    # Two levels are a dominant binary feature as often as a leak: not judged.
    assert monotone_columns((y > 0).float()[:, None].repeat(1, 2), y) == []


class FirstTokenClassifier(L.LightningModule):
    """A synthetic task whose class is the first token (the zoo's bigru clipping scenario): the label is in the
    input by design, so integer columns are not scanned against class labels."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.rnn(self.embed(x))[0][:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_class_token_of_a_synthetic_sequence_task_is_not_a_label_column(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens, y = torch.randint(4, 20, (128, 12), generator=g), torch.randint(0, 4, (128,), generator=g)
    tokens[:, 0] = y
    train = DataLoader(TensorDataset(tokens, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert not serious(_fit(tmp_path, FirstTokenClassifier(), train), "target-leakage")


# --------------------------------------------------------------------------- the target is what the loss compares with


class FeatureTagger(L.LightningModule):
    """Tags each token of an ``(ids, features, tags)`` batch; with ``read_tags`` the tags are fed to the model too,
    unshifted (the answer at every position)."""

    def __init__(self, read_tags: bool = False) -> None:
        super().__init__()
        self.read_tags = read_tags
        self.embed, self.tag_embed, self.feat = nn.Embedding(30, 32), nn.Embedding(5, 32), nn.Linear(3, 32)
        self.gru, self.out = nn.GRU(32, 32, batch_first=True), nn.Linear(32, 5)

    def forward(self, ids: torch.Tensor, feats: torch.Tensor, tags: torch.Tensor = None) -> torch.Tensor:
        h = self.embed(ids) + self.feat(feats) + (self.tag_embed(tags) if tags is not None else 0)
        return self.out(self.gru(h)[0])

    def training_step(self, batch, batch_idx):
        ids, feats, tags = batch
        out = self(ids, feats, tags) if self.read_tags else self(ids, feats)
        return F.cross_entropy(out.flatten(0, 1), tags.flatten())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("read_tags", [False, True])
def test_second_part_of_a_tagger_batch_is_an_input_when_the_loss_compares_with_the_third(tmp_path, read_tags):
    g = torch.Generator().manual_seed(0)
    ids, feats = torch.randint(0, 30, (64, 20), generator=g), torch.randn(64, 20, 3, generator=g)
    train = DataLoader(TensorDataset(ids, feats, ids % 5), batch_size=16)
    report = _fit(tmp_path, FeatureTagger(read_tags), train)
    # The per-position features (the second part) are an input a causal tagger reads at each position: no leak.
    # The tags themselves fed to it are.
    assert bool(serious(report, "target-leakage")) is read_tags
    assert not serious(report, "causal-leakage")


# --------------------------------------------------------------------------- packed rows with their document ids


class PackedLM(L.LightningModule):
    """One attention layer on packed ``(ids, doc_ids)`` rows: the mask keeps attention inside each document (and, when
    ``causal``, to earlier positions); the step makes ``labels`` from ``ids`` and the model shifts them in its loss.
    The document ids change the output wherever they change, but they are no target."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal
        self.tok, self.pos = nn.Embedding(9, 16), nn.Embedding(32, 16)
        self.qkv, self.head = nn.Linear(16, 48), nn.Linear(16, 9)

    def forward(self, input_ids, doc_ids, labels):
        t = input_ids.shape[1]
        mask = doc_ids[:, :, None] == doc_ids[:, None, :]
        if self.causal:
            mask = mask & torch.ones(t, t, dtype=torch.bool).tril()
        h = self.tok(input_ids) + self.pos.weight[:t]
        q, k, v = self.qkv(h).chunk(3, -1)
        logits = self.head(h + F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}

    def training_step(self, batch, batch_idx):
        ids, docs = batch
        labels = ids.masked_fill(docs != torch.roll(docs, 1, 1), -100)  # a document's first token: unpredictable
        return self(input_ids=ids, doc_ids=docs, labels=labels)["loss"]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("causal", [False, True])
def test_packed_rows_document_ids_are_not_a_target(tmp_path, causal):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 9, (64, 32), generator=g)
    docs = (torch.arange(32) // 8).expand(64, 32).clone()  # four documents of eight tokens per row
    report = _fit(tmp_path, PackedLM(causal), DataLoader(TensorDataset(ids, docs), batch_size=16))
    if causal:
        assert _status(report) == {"causal-leakage": "pass", "target-leakage": "pass"}
    else:
        assert serious(report, "causal-leakage") and not serious(report, "target-leakage")
