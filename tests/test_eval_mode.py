"""The suite's extra forwards (fixed-batch snapshots, flow checks, leakage probes) see the model in the mode Lightning's
validation gives it, and leave every module's own flag as the user set it."""

import lightning as L
import torch
from helpers import Classifier, fit
from torch import nn

from lightning_sanity.callbacks._extra_forward import eval_mode


class MCDropout(nn.Module):
    """Monte-Carlo dropout: a ``train()`` override keeps dropout on in eval mode, as validation then runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 10))

    def train(self, mode: bool = True) -> "MCDropout":
        super().train(mode)
        self.body[2].train(True)
        return self


def test_eval_mode_applies_train_overrides_like_validation_and_restores_every_flag():
    model = MCDropout().train()
    model.body[1].eval()  # a user froze this BatchNorm by hand: it must stay frozen
    before = [m.training for m in model.modules()]
    with eval_mode(model):
        inside = {type(m).__name__: m.training for m in model.modules()}
    assert inside == {"MCDropout": False, "Sequential": False, "Linear": False, "BatchNorm1d": False, "Dropout": True}
    assert [m.training for m in model.modules()] == before


def test_every_extra_forward_leaves_the_modes_as_they_were_over_a_fit(tmp_path):
    """Modes seen by the user's own training steps are the same with the suite as without it."""
    seen = []

    class Watched(Classifier):
        def training_step(self, batch, batch_idx):
            seen.append(tuple(m.training for m in self.modules()))
            return super().training_step(batch, batch_idx)

    L.seed_everything(0)
    net = MCDropout().body
    net[1].eval()
    fit(Watched(net=net), tmp_path, max_epochs=1)
    assert seen and all(s == seen[0] for s in seen) and seen[0][3] is False  # the frozen BatchNorm stays frozen
