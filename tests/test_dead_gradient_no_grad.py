"""dead-gradient, kind ``no_grad``: layers in the optimizer that run only under ``torch.no_grad()`` in training.

An encoder whose ``encode()`` carries ``@torch.no_grad()`` (kept for an embedding export) and that ``forward`` calls
is cut from the loss: it feeds the head that learns and stays at its initialisation (its LayerNorm still all ones, its
weights PyTorch's default draw), a warning. Healthy twins stay below warning: a trained encoder frozen the Lightning-docs way (eval mode, run under
no_grad, left in the optimizer), a frozen one (``requires_grad_(False)``), one run under no_grad and left out of the
optimizer, an EMA teacher whose outputs are targets, and a random target network (its outputs are targets too).
A class tower encoded under no_grad in ``on_train_epoch_start`` into prototypes that every step reads is a warning
too (never called in training_step, never trained); the same tower run in the step, or a head run only in
validation, is not.
"""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits_loaders, fit, read_report, serious
from torch import nn


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(64, 48), nn.LayerNorm(48), nn.Linear(48, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.fc2(F.gelu(self.norm(self.fc1(x)))))


class ProbeBase(L.LightningModule):
    """An encoder and a linear head on digits; ``features`` says how the encoder is run in training."""

    def __init__(self, encoder: nn.Module | None = None, optimize_encoder: bool = True) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else Encoder()
        self.head = nn.Linear(32, 10)
        self.optimize_encoder = optimize_encoder

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        params = self.parameters() if self.optimize_encoder else self.head.parameters()
        return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)


class DecoratedEncode(ProbeBase):
    """The bug: ``encode()`` is decorated for the export, and forward calls it."""

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


class FrozenExtractor(ProbeBase):
    """Lightning's transfer-learning recipe: a trained extractor in eval mode under no_grad, in the optimizer."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.encoder.eval()
        with torch.no_grad():
            return self.encoder(x)


def _pretrained_encoder() -> Encoder:
    torch.manual_seed(1)
    encoder, head = Encoder(), nn.Linear(32, 10)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    train, _ = digits_loaders()
    for x, y in train:
        opt.zero_grad()
        F.cross_entropy(head(encoder(x)), y).backward()
        opt.step()
    return encoder


class EmaTeacher(ProbeBase):
    """Mean teacher: an EMA copy of encoder and head run under no_grad; its outputs are the consistency targets."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher = copy.deepcopy(nn.ModuleDict({"encoder": self.encoder, "head": self.head}))

    def training_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            target = F.softmax(self.teacher["head"](self.teacher["encoder"](x + 0.05 * torch.randn_like(x))), -1)
        logits = self(x)
        return F.cross_entropy(logits, y) + F.mse_loss(F.softmax(logits, -1), target)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        with torch.no_grad():
            student = [*self.encoder.parameters(), *self.head.parameters()]
            torch._foreach_lerp_(list(self.teacher.parameters()), student, 0.05)


class RandomTarget(ProbeBase):
    """Random network distillation: a fixed random network under no_grad gives regression targets."""

    def __init__(self) -> None:
        super().__init__()
        self.target = Encoder()
        self.predictor = nn.Linear(32, 32)

    def training_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            target = self.target(x)
        h = self.features(x)
        return F.cross_entropy(self.head(h), y) + F.mse_loss(self.predictor(h), target)


def _dead(tmp_path, model) -> list[dict]:
    L.seed_everything(0)
    t = fit(model, tmp_path, max_epochs=2)
    return [f for f in read_report(t.log_dir)["findings"] if f["check"] == "dead-gradient"]


def test_encoder_behind_a_decorated_encode_method_is_a_warning(tmp_path):
    (finding,) = [f for f in _dead(tmp_path, DecoratedEncode()) if f["severity"] != "info"]
    assert finding["severity"] == "warning" and finding["where"] == "encoder"
    data = finding["data"]
    assert data["kind"] == "no_grad" and data["layers"] == ["encoder.fc1", "encoder.norm", "encoder.fc2"]
    assert data["feeds"] == ["head"]
    assert data["untrained"] == ["encoder.norm.weight", "encoder.norm.bias", "encoder.fc1.weight", "encoder.fc2.weight"]
    assert "decorator" in finding["advice"]


class NoGradEmbedding(ProbeBase):
    """A plain MLP (no constant fill anywhere) run under no_grad "to save memory", feeding the head."""

    def __init__(self) -> None:
        super().__init__(nn.Sequential(nn.Linear(64, 48), nn.SiLU(), nn.Linear(48, 32)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(x)


def test_plain_mlp_under_no_grad_still_at_its_default_draw_is_a_warning(tmp_path):
    (finding,) = [f for f in _dead(tmp_path, NoGradEmbedding()) if f["severity"] != "info"]
    assert finding["data"]["kind"] == "no_grad" and finding["data"]["untrained"] == ["encoder.0.weight",
                                                                                     "encoder.2.weight"]


def test_trained_extractor_frozen_under_no_grad_in_the_optimizer_is_info(tmp_path):
    found = _dead(tmp_path, FrozenExtractor(_pretrained_encoder()))
    assert [(f["severity"], f["data"]["kind"]) for f in found] == [("info", "no_grad")]


@pytest.mark.parametrize("how", ["requires_grad", "left_out"])
def test_frozen_encoder_is_silent(tmp_path, how):
    if how == "requires_grad":
        model = DecoratedEncode(Encoder().requires_grad_(False))
    else:  # run under no_grad on purpose, its parameters left out of the optimizer
        model = DecoratedEncode(optimize_encoder=False)
    assert _dead(tmp_path, model) == []


@pytest.mark.parametrize("model", [EmaTeacher, RandomTarget])
def test_teacher_or_target_network_under_no_grad_is_not_a_warning(tmp_path, model):
    found = _dead(tmp_path, model())
    assert not serious({"findings": found}) and found  # the targets' network is named, as info
    assert {f["data"]["kind"] for f in found} == {"no_grad"}


class CachedPrototypes(ProbeBase):
    """A class tower encodes the ten classes into prototypes; the step scores features against them."""

    def __init__(self, cached: bool = True) -> None:
        super().__init__()
        self.classes = nn.Sequential(nn.Linear(10, 48), nn.ReLU(), nn.Linear(48, 32))
        self.cached, self.prototypes = cached, None

    def class_vectors(self) -> torch.Tensor:
        return self.classes(torch.eye(10, device=self.device))

    def on_train_epoch_start(self) -> None:
        if self.cached:  # the bug: "refreshed every epoch, like an index", so never trained
            with torch.no_grad():
                self.prototypes = self.class_vectors()

    def training_step(self, batch, batch_idx):
        x, y = batch
        prototypes = self.prototypes if self.cached else self.class_vectors()
        return F.cross_entropy(self.encoder(x) @ prototypes.T, y)


class ValidationOnlyHead(ProbeBase):
    """A second head trained elsewhere and only evaluated here: never called in training_step."""

    def __init__(self) -> None:
        super().__init__()
        self.probe_head = nn.Linear(32, 10)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.probe_head(self.features(x)), y))


def test_tower_cached_under_no_grad_between_steps_is_a_warning(tmp_path):
    (finding,) = [f for f in _dead(tmp_path, CachedPrototypes()) if f["severity"] != "info"]
    assert finding["severity"] == "warning" and finding["data"]["kind"] == "no_grad" and finding["data"]["cached"]
    assert "on_train_epoch_start" in finding["message"]


@pytest.mark.parametrize("model", [lambda: CachedPrototypes(cached=False), ValidationOnlyHead])
def test_tower_run_in_the_step_or_only_in_validation_is_not_a_warning(tmp_path, model):
    assert not serious({"findings": _dead(tmp_path, model())})
