"""The fit-start probes at their reduced sizes: a wide output read on strided units (an LM's logits) still shows a
causal leak and stays silent when causal, and an output exactly as wide as the 9-sample flow batch is not taken
for a ``(B, B)`` comparison."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from _models_leakage import DecoderLM, motif_tokens, shifted_loader
from helpers import Classifier, digits, fit_report, loader, serious

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary

WIDE = 3000  # 16 positions x 3000 logits: past both strided caps (1024 units a position, 4096 a sample)


def _checks(report: dict, names: tuple) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"] if c["name"] in names}


@pytest.mark.parametrize("causal", [True, False])
def test_wide_vocabulary_lm_on_strided_units(tmp_path, causal):
    L.seed_everything(0)
    report = fit_report(tmp_path, DecoderLM(causal=causal, vocab=WIDE), shifted_loader(motif_tokens(32, 0, vocab=WIDE)),
                        [LeakageChecks(), ModelChecks(), SanitySummary(print_summary=False)], logger=None,
                        max_epochs=1)
    statuses = _checks(report, ("causal-leakage", "constant-output", "batch-mixing"))
    assert statuses["constant-output"] == statuses["batch-mixing"] == "pass"
    if causal:
        assert statuses["causal-leakage"] == "pass" and not serious(report)
    else:
        (found,) = serious(report, "causal-leakage")
        assert found["data"]["position"] <= found["data"]["perturbed_after"]


class NineWay(Classifier):
    """Nine classes: on the 9-sample flow batch its logits are ``(9, 9)``; ``mix`` normalises over the batch."""

    def __init__(self, mix: bool) -> None:
        super().__init__(classes=9)
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return torch.log_softmax(out, dim=0) if self.mix else out


@pytest.mark.parametrize("mix", [True, False])
def test_nine_logits_on_nine_samples_are_per_sample_outputs(tmp_path, mix):
    x, y = digits(256)
    report = fit_report(tmp_path, NineWay(mix), loader(x, y % 9), [ModelChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_epochs=1, limit_train_batches=2)
    if mix:
        (found,) = serious(report, "batch-mixing")
        assert found["data"]["leak_fraction"] > 0.1
    else:
        assert _checks(report, ("batch-mixing",)) == {"batch-mixing": "pass"} and not serious(report, "batch-mixing")


def test_hidden_step_watches_hide_the_suites_watchers_only():
    """Extra forwards inside the first step are not seen by the suite's watchers; user modes stay, in order."""
    from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

    from lightning_sanity.callbacks._extra_forward import hidden_step_watches
    from lightning_sanity.callbacks._step_watch import StepWatch

    class Counting(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    seen: list = []
    user, watch = Counting(), StepWatch(before=lambda f, a, k: seen.append(f))
    with user:
        watch.start()
        try:
            with hidden_step_watches():
                torch.ones(2) + 1
                assert _get_current_function_mode_stack() == [user]
                inner = StepWatch().start()  # pushed inside: stays on top afterwards
            assert not seen and user.calls == 2
            assert _get_current_function_mode_stack() == [user, watch, inner]
            inner.stop()
            torch.ones(2) + 1
            assert seen
        finally:
            watch.stop()
    assert _get_current_function_mode_stack() == []


class PaddedPool(L.LightningModule):
    """Attention pooling over padded token sequences; ``over_batch`` takes the softmax over the batch (the bug)."""

    def __init__(self, over_batch: bool) -> None:
        super().__init__()
        self.over_batch = over_batch
        self.embed = torch.nn.Embedding(20, 16, padding_idx=0)
        self.score = torch.nn.Linear(16, 1)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        h = self.embed(words)
        scores = self.score(h).squeeze(-1).masked_fill(words == 0, float("-inf"))
        weights = torch.softmax(scores, dim=0 if self.over_batch else 1)
        return self.head((weights.unsqueeze(-1) * h).sum(1))

    def training_step(self, batch, batch_idx):
        words, y = batch
        return torch.nn.functional.cross_entropy(self(words), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("over_batch", [True, False])
def test_flow_batch_cut_to_padding_only_positions_falls_back_to_the_whole_batch(tmp_path, over_batch):
    """The first 9 samples are short and the batch is padded for a longer one: in the cut, the last positions are
    padding in every sample, a softmax over the batch gives NaN there and no gradient shows the mixing."""
    g = torch.Generator().manual_seed(0)
    words = torch.zeros(32, 12, dtype=torch.long)
    lengths = torch.full((32,), 4)
    lengths[9:] = torch.randint(4, 13, (23,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        words[i, :n] = torch.randint(1, 20, (n,), generator=g)
    y = words[:, 0] % 3
    report = fit_report(tmp_path, PaddedPool(over_batch), loader(words, y, batch_size=32, shuffle=False),
                        [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                        limit_train_batches=1)
    if over_batch:
        (found,) = serious(report, "batch-mixing")
        assert found["data"]["leak_fraction"] > 0.01
    else:
        assert _checks(report, ("batch-mixing",)) == {"batch-mixing": "pass"} and not serious(report, "batch-mixing")
