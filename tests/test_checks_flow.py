"""The pure functions behind optimizer-coverage, constant-output, batch-mixing and train-mode, on plain tensors."""

import torch
from torch import nn

from lightning_sanity.checks import flow, modes


def test_optimizer_coverage_ignores_frozen_and_counts_foreign():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    cov = flow.optimizer_coverage(model.named_parameters(), model[1].parameters())
    assert cov.uncovered == [] and cov.foreign == 0 and cov.trainable == 2
    stranger = nn.Linear(3, 3)
    cov = flow.optimizer_coverage(model.named_parameters(), [model[1].weight, stranger.weight])
    assert cov.uncovered == ["1.bias"] and cov.foreign == 1 and cov.foreign_shapes == [[3, 3]]


def test_uncovered_modules_collapse_to_the_highest_fully_missing_module():
    trainable = ["enc.0.weight", "enc.0.bias", "enc.1.weight", "head.0.weight", "head.1.weight", "scale"]
    assert flow.uncovered_modules(["head.0.weight", "head.1.weight"], trainable) == ["head"]
    assert flow.uncovered_modules(["enc.0.weight", "enc.0.bias", "scale"], trainable) == ["enc.0", "scale"]


def test_per_sample_views_read_every_layout():
    b, t, c = 3, 4, 5
    out = torch.arange(b * t * c, dtype=torch.float32).view(b, t, c)
    (name, rows), = flow.per_sample_views(out, b)
    assert name == "batch-first" and torch.equal(rows[1], out[1].flatten())
    (name, rows), = flow.per_sample_views(out.transpose(0, 1), b)
    assert name == "sequence-first" and torch.equal(rows[2], out[2].flatten())
    sample_major, _ = flow.per_sample_views(out.reshape(b * t, c), b)
    assert torch.equal(sample_major[1][1], out[1].flatten())
    _, time_major = flow.per_sample_views(out.transpose(0, 1).reshape(t * b, c), b)
    assert torch.equal(time_major[1][1], out[1].flatten())
    assert flow.per_sample_views(torch.zeros(7, 2), 3) == []


def test_first_output_tensor_walks_dicts_and_tuples():
    logits = torch.zeros(4, 3)
    assert flow.first_output_tensor({"loss": torch.tensor(1.0), "logits": logits}, 4) is logits
    assert flow.first_output_tensor((torch.zeros(4, dtype=torch.long), [logits]), 4) is logits
    assert flow.first_output_tensor(torch.zeros(5), 4) is None


def test_constant_judgement():
    rows = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    spread, scale = flow.output_spread(rows, [1, 2])
    assert flow.is_constant(spread, scale)
    rows[2, 0] += 1e-3
    assert not flow.is_constant(*flow.output_spread(rows, [1, 2]))
    assert not flow.is_constant(float("nan"), 1.0)
    assert flow.differing_samples(torch.tensor([[0.0], [0.0], [1.0]])) == [2]


def test_perturb_uses_only_its_generator():
    x = torch.ones(4, 3)
    before = torch.get_rng_state()
    y = flow.perturb(x, 0, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(y[0], x[0]) and torch.equal(y[1:], x[1:])


def test_leak_fraction_is_zero_for_per_sample_models_and_positive_for_mixing():
    x = torch.randn(5, 4, requires_grad=True)
    healthy = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2)).eval()
    (g,) = torch.autograd.grad(healthy(x)[2].sum(), [x])
    assert flow.leak_fraction(g, 0, 2) == 0.0
    bn = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)).eval()  # running statistics: per sample
    (g,) = torch.autograd.grad(bn(x)[2].sum(), [x])
    assert flow.leak_fraction(g, 0, 2) == 0.0
    (g,) = torch.autograd.grad(x.t().reshape(5, 4)[2].sum(), [x])
    assert flow.leak_fraction(g, 0, 2) > 0.5 and flow.leaking_samples(g, 0, 2)
    # a causal sequence model mixes time steps, not samples
    seq = torch.randn(3, 6, 4, requires_grad=True)
    (g,) = torch.autograd.grad(seq.cumsum(1)[1].sum(), [seq])
    assert flow.leak_fraction(g, 0, 1) == 0.0


def test_sample_indices_and_pairwise():
    assert flow.sample_indices(10, 1) == [0]
    assert flow.sample_indices(100, 4) == [0, 33, 66, 99]
    assert flow.is_pairwise_output(torch.zeros(4, 4), 4) and not flow.is_pairwise_output(torch.zeros(4, 4, 2), 4)


def test_locate_transition_inside_a_module():
    ev = [flow.Event(0, "", "in", True), flow.Event(1, "gate", "in", True), flow.Event(2, "gate", "out", False),
          flow.Event(3, "", "out", False)]
    assert flow.locate_transition(ev, {"": (0, 3), "gate": (1, 2)}) == {"inside": "gate", "after": "gate", "before": "gate"}
    assert flow.locate_transition([flow.Event(0, "", "in", False)], {"": (0, 0)}) is None


def test_mode_dependent_modules_and_frozen_parts():
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.BatchNorm1d(4))
    model.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2), nn.Dropout(0.0))
    assert [n for n, _ in modes.mode_dependent_modules(model)] == ["backbone.1", "backbone.2", "head.0"]
    model.backbone.requires_grad_(False)
    assert modes.split_by_frozen(model, ["backbone.1", "backbone.2", "head.0"]) == (
        ["backbone.1", "backbone.2"], ["head.0"])
    assert modes.summarize_names(["a", "b", "c"], limit=2) == "`a`, `b` and 1 more"
