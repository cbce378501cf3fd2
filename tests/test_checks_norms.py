"""The pure functions behind the norm and activation checks, on tensors, without a Trainer."""

import math

import pytest
import torch
from torch import nn

from lightning_sanity.checks import activations as A
from lightning_sanity.checks import layers as LM
from lightning_sanity.checks import norms as N
from lightning_sanity.checks.naming import common_module, short_list


def test_layer_map_finds_modules_owning_parameters_and_their_kinds():
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Sequential(nn.Embedding(5, 8), nn.Linear(8, 2)))
    layers = LM.layer_map(net)
    assert layers.names == ("0", "1", "3.0", "3.1")
    assert layers.kinds == ("matrix", "norm", "embedding", "matrix")
    assert layers.numels == (40, 16, 40, 18)
    assert {layers.param_layer[id(p)] for p in net.parameters()} == {0, 1, 2, 3}


def test_layer_map_root_parameters_and_tied_weights():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.emb = nn.Embedding(5, 3)
            self.out = nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    layers = LM.layer_map(Tied())
    assert layers.names == (LM.ROOT, "emb")  # the tied weight belongs to its first owner
    assert layers.kinds == ("vector", "embedding")


def test_broadcast_shaped_parameters_are_vectors_and_standard_weights_matrices():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.full((8, 1, 1), 1e-6))  # ConvNeXt's layer scale
            self.cls = nn.Parameter(torch.zeros(1, 1, 8))  # a ViT's class token
            self.conv = nn.Conv2d(8, 8, 1)

    class Pos(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(1, 16, 8))  # a position table: a real matrix

    layers = LM.layer_map(nn.Sequential(Scaled(), nn.Linear(8, 1), Pos()))
    assert dict(zip(layers.names, layers.kinds)) == {"0": "vector", "0.conv": "matrix", "1": "matrix", "2": "matrix"}


def test_grouping_by_depth_regex_and_automatically():
    net = nn.Sequential(*[nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)) for _ in range(4)])
    assert LM.layer_map(net).groups == tuple(f"{i}.{j}" for i in range(4) for j in range(2))
    assert LM.layer_map(net, depth=1).groups == ("0", "1", "2", "3")
    assert LM.layer_map(net, pattern=r"^(\d)\.").groups == ("0", "1", "2", "3")
    auto = LM.layer_map(net, max_groups=5)
    assert auto.depth == 1 and auto.groups == ("0", "1", "2", "3") and auto.group_of == (0, 0, 1, 1, 2, 2, 3, 3)
    assert len(LM.layer_map(net).names) == 8  # judgements stay per layer


def test_layer_sum_of_squares_matches_torch_norm_and_adds_in_place():
    torch.manual_seed(0)
    tensors = [torch.randn(3, 4), torch.randn(4), torch.randn(2, 2, 2)]
    index = torch.tensor([0, 0, 1])
    sq = LM.layer_sum_of_squares(tensors, index, 2)
    expected = [tensors[0].norm() ** 2 + tensors[1].norm() ** 2, tensors[2].norm() ** 2]
    assert torch.allclose(sq, torch.stack(expected))
    LM.layer_sum_of_squares(tensors, index, 2, out=sq)
    assert torch.allclose(sq, 2 * torch.stack(expected))


def test_tensor_norms_handles_sparse_and_low_precision():
    sparse = torch.sparse_coo_tensor([[0, 0, 2]], [3.0, 1.0, 0.0], (4,), check_invariants=True)  # uncoalesced: 3 + 1 at index 0
    norms = LM.tensor_norms([sparse, torch.full((4,), 2.0, dtype=torch.bfloat16)])
    assert norms.dtype == torch.float32 and norms.tolist() == [4.0, 4.0]


def test_gradient_counts_and_dead_layers():
    counts = N.GradientCounts.empty(4)
    steps = 10
    trainable = torch.tensor([[True, True, True, False]] * steps)
    present = torch.tensor([[True, False, True, False]] * steps)
    grad_sq = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * steps)
    grad_sq[:3, 2] = 1.0  # layer 2 learns for 3 steps, then dies
    counts.update(trainable, present, grad_sq)
    dead = N.dead_layers(counts)
    assert dead == {"missing": [1], "zero": [], "died": [2]}  # layer 3 is frozen: not dead


def test_dead_layers_needs_enough_steps_and_ignores_a_zero_first_step():
    counts = N.GradientCounts.empty(1)
    counts.update(torch.ones(3, 1, dtype=torch.bool), torch.ones(3, 1, dtype=torch.bool), torch.zeros(3, 1))
    assert N.dead_layers(counts) == {"missing": [], "zero": [], "died": []}  # 3 < MIN_STEPS
    counts = N.GradientCounts.empty(1)
    sq = torch.ones(20, 1)
    sq[0] = 0.0  # a zero-initialised gate: no gradient on the very first step only
    counts.update(torch.ones(20, 1, dtype=torch.bool), torch.ones(20, 1, dtype=torch.bool), sq)
    assert N.dead_layers(counts) == {"missing": [], "zero": [], "died": []}


def test_vanishing_layers_needs_small_absolute_and_relative_gradients():
    steps, numel = 10, torch.tensor([100, 100, 100])
    weight_sq = torch.full((steps, 3), 100.0)
    grad_sq = torch.tensor([[1e-20, 1e-10, 1.0]] * steps)  # RMS 1e-11, 1e-6, 1e-1
    eligible = torch.ones(3, dtype=torch.bool)
    found = N.vanishing_layers(grad_sq, weight_sq, numel.tolist(), eligible)
    assert [layer for layer, _, _ in found] == [0]
    # Everything tiny together (a converged model): nothing is vanishing relative to the rest.
    assert N.vanishing_layers(grad_sq * 0 + 1e-20, weight_sq, numel.tolist(), eligible) == []
    # An ineligible layer (an embedding) is neither judged nor a reference.
    assert N.vanishing_layers(grad_sq, weight_sq, numel.tolist(), torch.tensor([False, True, True])) == []


def test_gradient_spike_against_running_median_and_history_max():
    history = torch.tensor([1.0, 0.8, 1.2, 1.1, 0.9, 1.0])
    assert N.gradient_spike(history, 2e3) == pytest.approx(2e3)
    assert N.gradient_spike(history, 500.0) is None
    assert N.gradient_spike(history[:3], 1e6) is None  # warm-up
    assert N.gradient_spike(history, math.inf) is None  # non-finite belongs to the non-finite check
    # A converged model: tiny median, but early norms were large -> a hard batch is not a spike.
    converged = torch.cat([torch.full((5,), 50.0), torch.full((50,), 1e-3)])
    assert N.gradient_spike(converged, 5.0) is None


def test_sustained_growth_and_its_absence():
    assert N.sustained_growth(torch.logspace(0, 4, 48)) > 100
    assert N.sustained_growth(torch.ones(48)) is None
    noisy = torch.ones(48)
    noisy[::7] = 300.0  # isolated spikes do not move window medians
    assert N.sustained_growth(noisy) is None
    assert N.sustained_growth(torch.logspace(0, 4, 8)) is None  # too short to tell


def test_growing_layers():
    steps = 20
    weight = torch.ones(steps, 3)
    weight[:, 0] = torch.linspace(1, 20, steps)  # x20 and rising
    weight[:, 1] = torch.cat([torch.linspace(1, 12, 10), torch.full((10,), 12.0)])  # x12 but settled
    weight[:, 2] = 0.0  # zero-initialised: no starting norm
    weight[5:, 2] = torch.linspace(1, 30, 15)
    found = N.growing_layers(weight ** 2, [1, 1, 1])
    assert [layer for layer, _ in found] == [0]
    assert found[0][1] == pytest.approx(20.0)


def test_update_ratio_verdicts():
    m = 6
    weight_sq = torch.ones(m, 3)
    update_sq = torch.tensor([[1e-6, 4.0, 1e-16]] * m)
    update_sq[2:, 1] = 1e-4  # two huge updates, then the weights blew up and the ratio fell
    valid = torch.ones(m, 3, dtype=torch.bool)
    verdicts = N.update_ratio_verdicts(update_sq, weight_sq, valid)
    assert verdicts == {"too_large": [(1, 2.0)], "too_small": [(2, 1e-08)]}
    valid[:, 2] = False  # e.g. zero gradients or a parameter group with lr=0
    assert N.update_ratio_verdicts(update_sq, weight_sq, valid)["too_small"] == []


def test_common_module_and_short_list():
    assert common_module(["encoder.layers.0.linear", "encoder.layers.1.linear"]) == "encoder.layers"
    assert common_module(["a", "b"]) is None
    assert short_list([str(i) for i in range(8)], limit=3) == "0, 1, 2, ... (+5 more)"


# --------------------------------------------------------------------------- activations


def test_dead_unit_fraction_per_feature_channel_and_sequence():
    x = torch.zeros(32, 10)
    x[:, :3] = 1.0
    assert A.dead_unit_fraction(x).item() == pytest.approx(0.7)
    img = torch.zeros(4, 8, 5, 5)
    img[0, 0, 2, 2] = 1.0  # one channel is positive somewhere
    assert A.dead_unit_fraction(img).item() == pytest.approx(7 / 8)
    seq = torch.zeros(4, 6, 16)
    seq[:, :, :4] = 0.5
    assert A.dead_unit_fraction(seq).item() == pytest.approx(12 / 16)


def test_saturated_fraction_and_kinds():
    assert A.saturated_fraction(torch.sigmoid(torch.tensor([-10.0, 0.0, 10.0, 1.0])), "sigmoid").item() == 0.5
    assert A.activation_kind(nn.ReLU6()) == "relu" and A.activation_kind(nn.Hardtanh()) == "tanh"
    assert A.activation_kind(nn.GELU()) == "relu" and A.activation_kind(nn.Sigmoid()) == "sigmoid"
    assert A.activation_kind(nn.ELU()) is None and A.activation_kind(nn.Linear(2, 2)) is None
    with pytest.raises(ValueError, match="kind"):
        A.saturated_fraction(torch.zeros(2), "relu")


def test_values_per_unit_and_sustained():
    assert A.values_per_unit(torch.zeros(4, 8, 5, 5)) == 100
    assert A.values_per_unit(torch.zeros(4, 6, 16)) == 24
    assert A.sustained([0.95, 0.91], 0.9) and not A.sustained([0.95], 0.9)


def test_gradient_counts_of_a_block_equal_those_of_its_steps_one_by_one():
    gen = torch.Generator().manual_seed(0)
    steps, layers = 40, 6
    trainable = torch.rand(steps, layers, generator=gen) > 0.1
    present = torch.rand(steps, layers, generator=gen) > 0.3
    grad_sq = torch.where(torch.rand(steps, layers, generator=gen) > 0.6, torch.rand(steps, layers, generator=gen), 0.0)
    grad_sq[5, 2] = float("nan")
    block, single = N.GradientCounts.empty(layers), N.GradientCounts.empty(layers)
    block.update(trainable[:17], present[:17], grad_sq[:17])
    block.update(trainable[17:], present[17:], grad_sq[17:])
    for i in range(steps):
        single.update(trainable[i:i + 1], present[i:i + 1], grad_sq[i:i + 1])
    # reference: the rule written out step by step
    tail = torch.zeros(layers, dtype=torch.long)
    for t, p, g in zip(trainable, present, grad_sq):
        alive = t & p & (g != 0)
        tail = torch.where(alive, torch.zeros_like(tail), tail + ((t & ~p) | (t & p & (g == 0))).long())
    for counts in (block, single):
        assert counts.zero_tail.tolist() == tail.tolist()
        assert counts.observed.tolist() == trainable.long().sum(0).tolist()
        assert counts.missing.tolist() == (trainable & ~present).long().sum(0).tolist()
        assert counts.zero.tolist() == (trainable & present & (grad_sq == 0)).long().sum(0).tolist()
