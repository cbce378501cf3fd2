"""exploding-gradient spikes on real Trainer runs: a ReLU RNN without clipping is flagged, the same RNN with
gradient_clip_val is info at most; the pure judgement on ramps and early spikes."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import norms as N

pytestmark = pytest.mark.usefixtures("one_thread")


class ReluRNN(L.LightningModule):
    """Sign of the sum of the last 10 of 120 noisy values; Adam lr 1e-2 makes BPTT explode in the first steps."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 64, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(64, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, h = self.rnn(x)
        return F.cross_entropy(self.head(h[-1]), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _sequences(n=2048):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 120, 1, generator=g)
    return x, (x[:, -10:].sum(dim=(1, 2)) > 0).long()


def _spikes(tmp_path, clip):
    L.seed_everything(4)
    trainer = fit(ReluRNN(), tmp_path, loader(*_sequences()), None, max_epochs=1, gradient_clip_val=clip,
                  callbacks=[NormMonitor(), SanitySummary(print_summary=False)], limit_val_batches=0)
    report = read_report(trainer.log_dir)
    return [f for f in report["findings"] if f["check"] == "exploding-gradient" and f["data"]["kind"] == "spike"]


def test_unclipped_rnn_spike_is_a_warning_and_clipped_twin_is_info(tmp_path):
    (spike,) = _spikes(tmp_path / "bare", None)
    assert spike["severity"] == "warning" and spike["data"]["factor"] >= 1e3, spike
    clipped = _spikes(tmp_path / "clipped", 1.0)
    assert all(f["severity"] == "info" and f["data"]["clipped"] for f in clipped), clipped


def test_a_ramp_is_judged_against_the_first_steps():
    early = torch.tensor([1.0, 1.3, 0.9, 1.1, 1.2, 1.0] * 4, dtype=torch.float64)
    ramp = torch.cat([early, torch.tensor([8.0, 60.0, 450.0])])
    # 3400 is 7.5x its own previous step, but 2800x the running median and far above the first steps
    assert N.gradient_spike(ramp, 3400.0) is None
    assert N.gradient_spike(ramp, 3400.0, reference=float(early.max())) > 1e3


class LBFGSRegressor(L.LightningModule):
    """Full-batch L-BFGS on the standardised diabetes set: the first step converges, later gradients are tiny."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        penalty = sum((p ** 2).sum() for name, p in self.named_parameters() if name.endswith("weight"))
        return F.mse_loss(self.net(x).squeeze(-1), y) + 3e-2 * penalty

    def configure_optimizers(self):
        return torch.optim.LBFGS(self.parameters(), lr=1.0, max_iter=10, history_size=20, line_search_fn="strong_wolfe")


def test_lbfgs_first_step_above_its_converged_median_is_info(tmp_path):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, _, y, _ = train_test_split(*load_diabetes(return_X_y=True), test_size=0.25, random_state=21)
    x = torch.tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    L.seed_everything(275)
    trainer = fit(LBFGSRegressor(), tmp_path, loader(x, y, batch_size=len(x)), None, max_epochs=15,
                  callbacks=[NormMonitor(), SanitySummary(print_summary=False)], limit_val_batches=0,
                  log_every_n_steps=1)
    spikes = [f for f in read_report(trainer.log_dir)["findings"] if f["check"] == "exploding-gradient"]
    assert spikes and all(f["severity"] == "info" and f["data"]["iterating_optimizer"] == "LBFGS" for f in spikes)


def test_iterating_optimizers_are_told_apart():
    w = [torch.zeros(2, requires_grad=True)]
    assert N.iterates_within_step(torch.optim.LBFGS(w))
    assert not N.iterates_within_step(torch.optim.LBFGS(w, max_iter=1))
    assert not N.iterates_within_step(torch.optim.Adam(w))
