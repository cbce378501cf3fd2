"""dead-gradient per parameter: a tensor whose gradient is exactly zero on every step inside a layer that learns
(an inverted missing-value mask zeroing every feature value), silent on masks the right way round, embeddings
with a padding row and experts that get no tokens on some steps."""

import lightning as L
import pytest
import torch
from helpers import breast_cancer, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary


class Tokenizer(nn.Module):
    """rtdl-style numeric tokens with a learned [MISSING] token per feature."""

    def __init__(self, features, d):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, d) * 0.3)
        self.bias = nn.Parameter(torch.randn(features, d) * 0.3)
        self.missing = nn.Parameter(torch.randn(features, d) * 0.3)

    def forward(self, x, observed):
        keep = observed[..., None]
        return (self.weight * x[..., None] + self.bias) * keep + self.missing * (1 - keep)


class Tabular(L.LightningModule):
    def __init__(self, inverted):
        super().__init__()
        self.inverted = inverted
        self.tokenizer = Tokenizer(30, 8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(30 * 8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        g = torch.Generator().manual_seed(batch_idx)
        missing = (torch.rand(x.shape, generator=g) < 0.1).float()
        x = x * (1 - missing)  # zero-filled missing cells
        observed = missing if self.inverted else 1 - missing  # isna() read as "observed": the bug
        return nn.functional.cross_entropy(self.head(self.tokenizer(x, observed)), y.long())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Experts(L.LightningModule):
    """Hard routing to 4 experts with an embedding that has a padding row: experts miss tokens on some steps."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8, padding_idx=0)
        self.experts = nn.ModuleList(nn.Linear(30 + 8, 2) for _ in range(4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        route = (x[:, 0] > 0).long() * 2 + (batch_idx % 3 == 0) * (x[:, 1] > 0).long()  # experts 1, 3: every third step
        tokens = (x[:, 2].abs() * 5).long().clamp(0, 19) * (x[:, 3] > 0)  # token 0: padding
        h = torch.cat([x, self.embed(tokens)], dim=1)
        logits = torch.zeros(len(x), 2)
        for e, expert in enumerate(self.experts):
            chosen = route == e
            logits = logits + expert(h) * chosen[:, None]  # dense compute, masked: zero gradient when unused
        return nn.functional.cross_entropy(logits, y.long())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(model, tmp_path):
    L.seed_everything(0)
    x, y = breast_cancer()
    callbacks = [NormMonitor(), SanitySummary(print_summary=False)]
    t = fit(model, tmp_path, train=loader(x, y, batch_size=64), callbacks=callbacks, max_epochs=1)
    return read_report(t.log_dir)


def test_inverted_missing_mask_names_the_tokenizer_weight(tmp_path):
    found = serious(_run(Tabular(inverted=True), tmp_path), "dead-gradient")
    assert len(found) == 1, [f["message"] for f in found]
    assert found[0]["data"]["kind"] == "zero_parameter"
    assert found[0]["data"]["parameters"] == ["tokenizer.weight"] and found[0]["where"] == "tokenizer.weight"
    assert "tokenizer.bias" in found[0]["message"] and "mask" in found[0]["advice"]


@pytest.mark.parametrize("build", [lambda: Tabular(inverted=False), Experts], ids=["mask-right-way", "experts"])
def test_healthy_sparse_gradients_stay_silent(tmp_path, build):
    assert not serious(_run(build(), tmp_path), "dead-gradient")


class Block(nn.Module):
    """A block whose learned offset moves every position but the first (a Funnel-style term the [CLS] query skips)."""

    def __init__(self, d):
        super().__init__()
        self.mix = nn.Linear(d, d)
        self.offset = nn.Parameter(torch.randn(d) * 0.1)
        self.scale = nn.Parameter(torch.ones(d))

    def forward(self, h):
        h = h + torch.tanh(self.mix(h.mean(dim=1, keepdim=True)))  # every position reads every other one
        return torch.cat([h[:, :1], h[:, 1:] + self.offset], dim=1) * self.scale


class FirstTokenClassifier(L.LightningModule):
    """Three blocks, then a head on position 0 only: the last block's offset can never reach the loss, by design."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(1, 8)
        self.blocks = nn.ModuleList(Block(8) for _ in range(3))
        self.head = nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        h = self.embed(x[:, :, None])
        for block in self.blocks:
            h = block(h)
        return nn.functional.cross_entropy(self.head(h[:, 0]), y.long())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_a_tensor_only_the_last_block_of_a_stack_cannot_use_is_info(tmp_path):
    report = _run(FirstTokenClassifier(), tmp_path)
    assert not serious(report, "dead-gradient")
    (finding,) = [f for f in report["findings"] if f["check"] == "dead-gradient"]
    assert finding["severity"] == "info" and finding["data"]["parameters"] == ["blocks.2.offset"]
    assert "other blocks" in finding["message"]


class PairwiseReward(L.LightningModule):
    """A Bradley-Terry reward model: one value head scores both sides of a pair, the loss sees only the difference,
    so the head's bias gets an exactly zero gradient by design (its weight learns)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(30, 16), nn.ReLU())
        self.value_head = nn.Linear(16, 1)

    def reward(self, x):
        return self.value_head(self.body(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        chosen, rejected = x, x.flip(0)  # pairs of rows; the label says which side should score higher
        sign = (y.float() - y.flip(0).float()).sign() + (y == y.flip(0)).float()
        return -nn.functional.logsigmoid(sign * (self.reward(chosen) - self.reward(rejected))).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_a_bias_the_pairwise_loss_cannot_see_is_info(tmp_path):
    report = _run(PairwiseReward(), tmp_path)
    assert not serious(report, "dead-gradient"), [f["message"] for f in serious(report, "dead-gradient")]
    (finding,) = [f for f in report["findings"] if f["check"] == "dead-gradient"]
    assert finding["severity"] == "info" and finding["data"]["kind"] == "shift_invariant"
    assert finding["data"]["parameters"] == ["value_head.bias"]


class ShiftedTokenizer(Tokenizer):
    """A custom layer named like a Linear whose `bias` is cut off by a bug: not a Linear/Conv bias, still a warning."""

    def forward(self, x, observed):
        return self.weight * x[..., None] + self.bias * 0.0 + self.missing * 0.0


def test_a_dead_bias_outside_a_linear_layer_still_warns(tmp_path):
    model = Tabular(inverted=False)
    model.tokenizer = ShiftedTokenizer(30, 8)
    found = serious(_run(model, tmp_path), "dead-gradient")
    assert len(found) == 1 and found[0]["data"]["kind"] == "zero_parameter"
    assert "tokenizer.bias" in found[0]["data"]["parameters"]
