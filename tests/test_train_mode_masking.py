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


class TokenModel(L.LightningModule):
    """Tokens from a learnable rule (each next token is the previous + 1). ``objective=True``: a masked LM whose
    forward hides 15 % of the tokens and predicts them (its loss inside, HuggingFace style); ``False``: a sequence
    classifier (the first token's parity) that hides 15 % of its input ids in forward as an augmentation."""

    def __init__(self, objective: bool) -> None:
        super().__init__()
        self.objective = objective
        self.emb, self.mix = nn.Embedding(21, 32), nn.Linear(32, 32)
        self.head = nn.Linear(32, 21 if objective else 2)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor = None) -> dict:
        hide = torch.rand(input_ids.shape, device=input_ids.device) < 0.15
        h = torch.relu(self.mix(self.emb(input_ids.masked_fill(hide, 20))))
        h = h + h.mean(1, keepdim=True)
        if self.objective:
            logits = self.head(h)
            targets = input_ids.masked_fill(~hide, -100)
            return {"loss": nn.functional.cross_entropy(logits.transpose(1, 2), targets), "logits": logits}
        logits = self.head(h.mean(1))
        return {"loss": None if labels is None else nn.functional.cross_entropy(logits, labels), "logits": logits}

    def training_step(self, batch, batch_idx):
        return self(**batch)["loss"]

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _tokens(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ids = (torch.randint(0, 10, (n, 1), generator=g) + torch.arange(10)) % 20
    return [{"input_ids": ids[i], "labels": ids[i, 0] % 2} for i in range(n)]


@pytest.mark.parametrize("objective", [True, False])
def test_a_mask_that_picks_the_forwards_own_loss_targets_is_the_objective(tmp_path, objective):
    L.seed_everything(0)
    loaders = [torch.utils.data.DataLoader(_tokens(n, s), batch_size=32, shuffle=s == 0) for n, s in ((512, 0), (64, 1))]
    callbacks = [PredictionDynamics(), SanitySummary(print_summary=False)]
    t = fit(TokenModel(objective), tmp_path, callbacks=callbacks, max_epochs=1, train=loaders[0], val=loaders[1])
    (finding,) = [f for f in read_report(t.log_dir)["findings"] if f["check"] == "train-mode"]
    assert finding["data"]["draws"] == ["rand thresholded"]
    if objective:  # masked-LM pre-training: a random mask in eval is its loss, only information
        assert finding["severity"] == "info" and finding["data"]["source"] == "objective-masking"
    else:  # token masking left on in eval for a classifier: the labels never depend on it
        assert finding["severity"] == "warning" and finding["data"]["source"] == "masking"
