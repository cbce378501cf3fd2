"""train-mode on random masking in eval, on real Trainers: SpecAugment-style masks drawn with randint, and a token
mask drawn as `rand < p`, in forward without `if self.training:` are warnings; the same augmentation behind the
guard is silent; VAE sampling (randn_like) stays info (tests/test_predictions.py); the global RNG is untouched."""

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary


class MaskedInput(nn.Module):
    """Hide a random band of 2-5 of the 64 pixels (SpecAugment's time mask), or 15 % of the pixels (token masking)."""

    def __init__(self, how: str, guarded: bool) -> None:
        super().__init__()
        self.how, self.guarded = how, guarded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.guarded and not self.training:
            return x
        if self.how == "band":
            width = torch.randint(2, 6, (x.shape[0], 1), device=x.device)
            start = torch.randint(0, 58, (x.shape[0], 1), device=x.device)
            idx = torch.arange(x.shape[1], device=x.device)
            return x.masked_fill((idx >= start) & (idx < start + width), 0.0)
        return x * (torch.rand_like(x) > 0.15)


def _run(tmp_path, how, guarded):
    L.seed_everything(0)
    net = nn.Sequential(MaskedInput(how, guarded), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    callbacks = [PredictionDynamics(), SanitySummary(print_summary=False)]
    t = fit(Classifier(net=net), tmp_path, callbacks=callbacks, max_epochs=1)
    return read_report(t.log_dir)


@pytest.mark.parametrize("how", ["band", "token"])
def test_random_masking_in_eval_is_a_train_mode_warning(tmp_path, how):
    (finding,) = serious(_run(tmp_path, how, guarded=False), "train-mode")
    assert finding["severity"] == "warning" and finding["data"]["source"] == "masking"
    assert finding["data"]["draws"] == (["randint"] if how == "band" else ["rand thresholded"])
    assert "not deterministic in eval mode" in finding["message"] and "if self.training" in finding["advice"]


def test_guarded_masking_is_silent(tmp_path):
    report = _run(tmp_path, "band", guarded=True)
    assert not [f for f in report["findings"] if f["check"] == "train-mode"]


def test_masking_watch_consumes_no_rng(tmp_path):
    _run(tmp_path, "band", guarded=False)
    with_suite = torch.rand(3)
    L.seed_everything(0)
    net = nn.Sequential(MaskedInput("band", False), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    fit(Classifier(net=net), tmp_path / "bare", callbacks=[], max_epochs=1, logger=None)
    assert torch.equal(with_suite, torch.rand(3))
