"""The judgement layer on real Trainer runs: findings agree with themselves, a run that ends at the prior fails, a
transient collapse is withdrawn, and one root cause gets one piece of advice."""

import math
import re

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def _wine_loaders():
    from sklearn.datasets import load_wine

    d = load_wine()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True), DataLoader(TensorDataset(x, y), batch_size=64)


class _PlainSGD(Classifier):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _mlp(inputs, hidden, classes, depth=2):
    layers = [nn.Linear(inputs, hidden), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, classes))


# --------------------------------------------------------------------------- one source of truth per finding


def test_sgd_lr_10_on_wine_findings_agree_with_themselves_and_the_run_fails(tmp_path):
    """SGD at lr=10 on standardized wine: the loss explodes at once, ReLUs die, the model ends at the prior."""
    L.seed_everything(0)
    train, val = _wine_loaders()
    model = _PlainSGD(net=_mlp(13, 64, 3), lr=10.0)
    trainer = fit(model, tmp_path, train, val, max_epochs=8)
    report = read_report(trainer.log_dir)
    assert report["status"] == "fail"

    (trend,) = serious(report, "loss-trend")
    assert trend["severity"] == "error" and "ends at the prior" in trend["message"]
    # Its start is the loss before the first update, the figure initial-loss reports.
    initial = float(re.search(r"cross_entropy ([0-9.]+) at init", _check(report, "initial-loss")["detail"]).group(1))
    assert trend["data"]["start"] == pytest.approx(initial, rel=1e-3)
    assert _check(report, "loss-trend")["detail"].startswith(f"loss {initial:.3g} before the first update")
    assert trend["data"]["tail_mean"] >= trend["data"]["baseline"] - 2 * trend["data"]["tail_standard_error"]

    # Every located finding's step is the step its message and its row name.
    for finding in serious(report):
        row = _check(report, finding["check"])
        assert row["status"] == ("fail" if finding["severity"] == "error" else row["status"])
        steps = [int(s) for s in re.findall(r"from step (\d+)", finding["message"])]
        if steps:
            assert steps[0] == finding["global_step"], finding
            assert f"from step {finding['global_step']}" in row["detail"] or finding["check"] != "dead-gradient"
    died = [f for f in serious(report, "dead-gradient") if f["data"]["kind"] == "died"]
    for finding in died:
        assert finding["global_step"] > 0  # where the gradients died, not the first step of the run
    if serious(report, "constant-output"):
        assert "output spread" not in _check(report, "constant-output")["detail"]

    # One cause, one piece of advice: the others point at the primary finding.
    advising = [f for f in serious(report) if "lower the learning rate" in f["advice"].lower()]
    assert len(advising) == 1, [(f["check"], f["advice"]) for f in serious(report)]
    primary = advising[0]
    for finding in serious(report):
        if "likely_cause" in finding["data"]:
            assert finding["data"]["likely_cause"]["check"] == primary["check"]
            assert finding["data"]["advice_alone"]


# --------------------------------------------------------------------------- a run that ends at the prior


def test_lr_100x_too_high_ends_at_the_prior_and_fails(tmp_path):
    """Adam at 0.3 (100x its usual 3e-3): the loss spikes, falls back to ln 10 and stays there (chance accuracy)."""
    L.seed_everything(0)
    x, y = digits()
    train = loader(x[:1437], y[:1437])
    report = read_report(fit(Classifier(net=_mlp(64, 128, 10), lr=0.3), tmp_path, train, max_epochs=4).log_dir)
    (trend,) = serious(report, "loss-trend")
    assert trend["severity"] == "error" and report["status"] == "fail"
    assert "ends at the prior" in trend["message"]
    # The baseline is the label prior's entropy over the labels seen, never above ln 10 (digits is balanced).
    counts = torch.bincount(y[:1437], minlength=10).double()
    true_entropy = float(-(counts / counts.sum() * (counts / counts.sum()).log()).sum())
    assert trend["data"]["baseline"] <= math.log(10) + 1e-9
    assert trend["data"]["baseline"] == pytest.approx(true_entropy, abs=0.05)
    assert "label-prior entropy" in _check(report, "loss-trend")["detail"]
    # The collapsed output is a lasting constant-output warning whose row shows the finding, not the fit-start spread.
    (constant,) = serious(report, "constant-output")
    row = _check(report, "constant-output")
    assert row["status"] == "warn" and "output spread" not in row["detail"]
    assert f"from step {constant['global_step']}" in row["detail"] and constant["global_step"] > 0


def test_same_model_at_a_sane_learning_rate_is_silent(tmp_path):
    L.seed_everything(0)
    x, y = digits()
    train = loader(x[:1437], y[:1437])
    report = read_report(fit(Classifier(net=_mlp(64, 128, 10), lr=3e-3), tmp_path, train, max_epochs=4).log_dir)
    assert not serious(report), report["findings"]
    assert _check(report, "loss-trend")["status"] == "pass"


# --------------------------------------------------------------------------- findings that can be withdrawn


def _offset_batchnorm_net(momentum):
    # Features far off centre before a BatchNorm: training mode normalises them with the batch statistics; in eval
    # mode, running statistics still near their initial 0/1 leave them at about -5 and every ReLU after it off.
    net = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64, momentum=momentum), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        net[0].bias.fill_(-5.0)
    return net


def _bn_run(tmp_path, momentum, epochs):
    L.seed_everything(0)
    x, y = digits()
    train, val = loader(x[:1437], y[:1437], batch_size=16), loader(x[1437:], y[1437:], shuffle=False)
    return read_report(fit(Classifier(net=_offset_batchnorm_net(momentum)), tmp_path, train, val,
                           max_epochs=epochs).log_dir)


def test_transient_eval_collapse_is_withdrawn_with_the_step_it_cleared(tmp_path):
    report = _bn_run(tmp_path, momentum=0.01, epochs=3)
    assert not serious(report, "constant-output"), report["findings"]
    (withdrawn,) = [f for f in report["findings"] if f["check"] == "constant-output" and f["data"].get("cleared_step")]
    assert withdrawn["severity"] == "info"
    assert withdrawn["data"]["cleared_step"] > withdrawn["global_step"]
    assert f"cleared at step {withdrawn['data']['cleared_step']}" in withdrawn["message"]
    assert "withdrawn" in _check(report, "constant-output")["detail"]


def test_lasting_collapse_with_unconverged_batchnorm_names_the_running_statistics(tmp_path):
    report = _bn_run(tmp_path, momentum=0.0005, epochs=1)
    (finding,) = serious(report, "constant-output")
    assert finding["severity"] == "warning"
    assert "BatchNorm running statistics" in finding["advice"] and "momentum" in finding["advice"]
    assert "dead ReLU" not in finding["advice"]
    row = _check(report, "constant-output")
    assert row["status"] == "warn" and f"from step {finding['global_step']}" in row["detail"]


# --------------------------------------------------------------------------- BatchNorm frozen for fine-tuning


class _FrozenBatchNormFinetune(Classifier):
    """Fine-tuning with BatchNorm kept in eval mode (its statistics frozen), every parameter trainable."""

    def on_train_epoch_start(self):
        self.net[1].eval()


def _bn_finetune_net(pretrained):
    net = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    if pretrained:
        # "Pretrained" statistics: those of the first layer's features on the data, as a checkpoint would hold.
        x, _ = digits()
        with torch.no_grad():
            h = net[0](x)
            net[1].running_mean.copy_(h.mean(0))
            net[1].running_var.copy_(h.var(0))
            net[1].num_batches_tracked.fill_(1000)
    return net


@pytest.mark.parametrize("pretrained", [True, False])
def test_batchnorm_frozen_in_eval_is_fine_only_with_pretrained_statistics(tmp_path, pretrained):
    L.seed_everything(0)
    x, y = digits()
    train = loader(x[:1437], y[:1437])
    model = _FrozenBatchNormFinetune(net=_bn_finetune_net(pretrained), lr=1e-3)
    report = read_report(fit(model, tmp_path, train, max_epochs=1).log_dir)
    if pretrained:
        assert not serious(report, "train-mode"), report["findings"]
        (info,) = [f for f in report["findings"] if f["check"] == "train-mode"]
        assert info["severity"] == "info" and "pretrained" in info["message"] and info["where"] == "net.1"
    else:
        (finding,) = serious(report, "train-mode")
        assert finding["where"] == "net.1"


# --------------------------------------------------------------------------- manual optimization without zero_grad


class _ManualLSTM(L.LightningModule):
    """An LSTM reading digits row by row, optimised by hand with Adam; ``zero_grad`` switchable."""

    def __init__(self, zero_grad):
        super().__init__()
        self.automatic_optimization = False
        self.zero_grad_each_step = zero_grad
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        out, _ = self.lstm(x.view(-1, 8, 8))
        return self.head(out[:, -1])

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        if self.zero_grad_each_step:
            opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("zero_grad", [False, True])
def test_manual_optimization_without_zero_grad_is_named_accumulating(tmp_path, zero_grad):
    L.seed_everything(0)
    x, y = digits()
    report = read_report(fit(_ManualLSTM(zero_grad), tmp_path, loader(x[:1437], y[:1437]), max_epochs=3).log_dir)
    found = serious(report, "exploding-gradient")
    if zero_grad:
        assert not found, found
    else:
        (finding,) = found
        assert finding["data"]["kind"] == "accumulating" and "zero_grad" in finding["advice"]
        assert finding["data"]["growth"] >= 3 and finding["data"]["rising_share"] >= 0.8


# --------------------------------------------------------------------------- HuggingFace-style causal LM


_VOCAB, _LENGTH, _PAD = 32, 16, 0


class _Output(dict):
    __getattr__ = dict.__getitem__


class _TinyCausalLM(nn.Module):
    """Takes ``input_ids``/``attention_mask``/``labels``, shifts the labels itself and returns ``.loss``/``.logits``."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(_VOCAB, 32)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, _VOCAB)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.head(self.rnn(self.emb(input_ids))[0])
        loss = None
        if labels is not None:
            # As transformers' ForCausalLMLoss: pad the labels by one ignored position, then shift them left.
            shifted = nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].contiguous()
            loss = nn.functional.cross_entropy(logits.float().view(-1, _VOCAB), shifted.view(-1), ignore_index=-100)
        return _Output(loss=loss, logits=logits)


class _CausalLMModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = _TinyCausalLM()

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _counting_sequences(padding_only_labels, n=256):
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        length = int(torch.randint(6, _LENGTH + 1, (1,), generator=g))
        start = int(torch.randint(1, _VOCAB - 1, (1,), generator=g))
        ids = torch.full((_LENGTH,), _PAD)
        ids[:length] = (start + torch.arange(length)) % (_VOCAB - 1) + 1
        mask = (torch.arange(_LENGTH) < length).long()
        keep = mask == 0 if padding_only_labels else mask == 1  # the bug: the label mask inverted
        items.append({"input_ids": ids, "attention_mask": mask, "labels": torch.where(keep, ids, -100)})
    return DataLoader(items, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("padding_only", [True, False])
def test_causal_lm_label_mask_that_keeps_only_padding_is_named(tmp_path, padding_only):
    L.seed_everything(0)
    report = read_report(fit(_CausalLMModule(), tmp_path, _counting_sequences(padding_only), max_epochs=2).log_dir)
    found = serious(report, "label-distribution")
    if padding_only:
        (finding,) = found
        assert finding["severity"] == "error" and "padding token" in finding["message"]
    else:
        assert not serious(report), report["findings"]
