"""kl_div over sequences ``(B, T, V)``: the baseline sums over the axis the target is a distribution along, and
``reduction="batchmean"`` divides by ``B`` only (a per-sequence sum, T distributions per batch element)."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks import losses as LS
from lightning_sanity.checks.distribution_axis import distribution_axis

VOCAB, SEQ = 12, 9


def _expect(*args, **kwargs):
    return LE.expected_losses(LS.bind_loss_call(F.kl_div, args, kwargs))


@pytest.mark.parametrize("axis", [2, 1])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
def test_sequence_baseline_matches_pytorch_on_the_distribution_axis(axis, reduction):
    g = torch.Generator().manual_seed(0)
    target = torch.softmax(2 * torch.randn(16, SEQ, VOCAB, generator=g), axis)
    e = _expect(torch.zeros(16, SEQ, VOCAB), target, reduction=reduction)
    best = torch.tensor(e.best_bias).double()
    shape = [1, 1, 1]
    shape[axis] = -1
    value = F.kl_div(best.reshape(shape).expand(16, SEQ, VOCAB), target.double(), reduction=reduction).item()
    per = 1.0 / target.numel() if reduction == "sum" else 1.0
    assert e.baseline == pytest.approx(value * per, rel=2e-3, abs=1e-4)
    uniform = F.log_softmax(torch.zeros(16, SEQ, VOCAB).double(), axis)
    assert e.uniform == pytest.approx(F.kl_div(uniform, target.double(), reduction=reduction).item() * per, rel=1e-4)


def test_the_axis_is_unknown_when_the_target_is_no_distribution():
    assert distribution_axis(torch.rand(4, 5, 6) + 0.5) is None
    assert _expect(torch.zeros(4, 5, 6), torch.rand(4, 5, 6) + 0.5, reduction="batchmean") is None


class _SequenceStudent(L.LightningModule):
    """A per-token student matching a fixed random bigram teacher over the vocabulary, loss per token."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim
        self.emb = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)
        self.teacher = nn.Embedding(VOCAB, VOCAB).requires_grad_(False)
        with torch.no_grad():
            self.teacher.weight.mul_(2)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        s = self.head(self.emb(x))
        kd = F.kl_div(F.log_softmax(s / 2, dim=self.dim), F.softmax(self.teacher(x) / 2, dim=self.dim),
                      reduction="batchmean")
        return kd / x.shape[1]  # batchmean divides by the batch size only

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("dim", [-1, 1], ids=["over-the-vocabulary", "over-time"])
def test_per_sequence_batchmean_distillation(tmp_path, dim):
    """Softmax over the vocabulary: silent (the per-sequence sum is expected); over the positions: loss-input."""
    L.seed_everything(0)
    x = torch.randint(0, VOCAB, (256, SEQ), generator=torch.Generator().manual_seed(1))
    report = fit_report(tmp_path, _SequenceStudent(dim), DataLoader(TensorDataset(x), batch_size=32),
                        my_callbacks(), max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0)
    found = [f for f in serious(report) if f["check"] in ("initial-loss", "loss-input")]
    detail = next(c for c in report["checks"] if c["name"] == "initial-loss")["detail"]
    if dim == -1:
        assert found == [] and f"x {SEQ} distributions per batch element" in detail, (found, detail)
    else:
        assert [(f["check"], f["data"]["positions"], f["data"]["vocab"]) for f in found] == [
            ("loss-input", SEQ, VOCAB)], found
        assert "dim=-1" in found[0]["advice"]


def test_positions_of_a_pointer_or_a_segmentation_are_no_vocabulary():
    from lightning_sanity.checks.distribution_axis import positions_instead_of_tokens

    ids = torch.randint(5, 100, (4, SEQ))
    qa = torch.randn(4, SEQ, 2)  # start/end scores over positions, BERT's 2-row token-type table in the model
    assert positions_instead_of_tokens(qa.log_softmax(1), qa.softmax(1), False, ids, {2, 100}) is None
    seg = torch.randn(4, 3, SEQ)  # per-position classes along axis 1 of a float-input model
    assert positions_instead_of_tokens(seg.log_softmax(1), seg.softmax(1), False, torch.randn(4, 3), {SEQ}) is None
