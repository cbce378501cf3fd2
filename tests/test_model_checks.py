"""ModelChecks on real Trainer runs: optimizer-coverage, constant-output and batch-mixing fire on their bugs and
stay silent on healthy models of several architectures."""

from typing import Any

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from lightning.pytorch.demos import LightningTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.model_checks import ModelChecks

MINE = ModelChecks.checks


def _run(model, tmp_path, train=None, callback=None, **kwargs) -> dict:
    train = train if train is not None else loader(*digits(512), batch_size=64)
    callbacks = [callback or ModelChecks(), SanitySummary(print_summary=False)]
    settings = dict(max_epochs=1, limit_train_batches=2, limit_val_batches=0, num_sanity_val_steps=0)
    settings.update(kwargs)
    t = fit(model, tmp_path, train, None, callbacks=callbacks, **settings)
    return read_report(t.log_dir)


def _statuses(report) -> dict:
    return {c["name"]: c["status"] for c in report["checks"] if c["name"] in MINE}


def _assert_silent(report, *, skipped=()) -> None:
    assert [f for f in serious(report) if f["check"] in MINE] == []
    for name, status in _statuses(report).items():
        assert status == ("skipped" if name in skipped else "pass"), (name, status, report["checks"])


# --------------------------------------------------------------------------- models


class CNN(Classifier):
    """Digits as 1x8x8 images through conv + BatchNorm + Dropout."""

    def __init__(self, mix_batch: bool = False, **kwargs: Any) -> None:
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2))
        super().__init__(net=net, **kwargs)
        self.head = nn.Linear(8 * 64, 10)
        self.mix_batch = mix_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x.view(-1, 1, 8, 8))
        if self.mix_batch:  # bug: channels swapped with the batch before flattening
            h = h.transpose(0, 1).reshape(h.shape[0], -1)
        else:
            h = h.flatten(1)
        return self.head(h)


class SequenceClassifier(Classifier):
    """Digits read row by row (8 steps of 8 features) by an LSTM."""

    def __init__(self, view_bug: bool = False) -> None:
        super().__init__()
        self.view_bug = view_bug
        # The bug: a sequence-first LSTM fed with `view(T, B, F)` instead of `permute(1, 0, 2)`.
        self.lstm = nn.LSTM(8, 32, batch_first=not view_bug)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], 8, 8)
        if self.view_bug:
            out, _ = self.lstm(x.view(8, x.shape[0], 8))
            return self.head(out[-1])
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Tokens(Dataset):
    """Next-token prediction on digits: pixel intensities (0..16) as tokens, 16 per sequence."""

    def __init__(self, n: int = 256) -> None:
        x, _ = digits(n)
        self.ids = (x * 16).round().long().view(n, 64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.ids[i, :16], self.ids[i, 1:17]


class DemoTransformer(LightningTransformer):
    def __init__(self) -> None:
        super().__init__(vocab_size=17)

    def prepare_data(self) -> None:  # the demo downloads WikiText2; the tests bring their own tokens
        pass


class TokenGRU(L.LightningModule):
    """A GRU language model over token ids, batch-first unless ``view_bug``."""

    def __init__(self, view_bug: bool = False) -> None:
        super().__init__()
        self.view_bug = view_bug
        self.embed = nn.Embedding(17, 16)
        self.gru = nn.GRU(16, 32, batch_first=not view_bug)
        self.out = nn.Linear(32, 17)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embed(ids)
        if self.view_bug:
            h, _ = self.gru(e.view(e.shape[1], e.shape[0], -1))
            return self.out(h).view(e.shape[0], e.shape[1], -1)
        h, _ = self.gru(e)
        return self.out(h)

    def training_step(self, batch, batch_idx):
        ids, target = batch
        return nn.functional.cross_entropy(self(ids).flatten(0, 1), target.flatten())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _tokens(batch_size: int = 16) -> DataLoader:
    return DataLoader(Tokens(), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- optimizer-coverage


def test_optimizer_over_another_model_is_an_error(tmp_path):
    class Elsewhere(Classifier):
        def configure_optimizers(self):
            # bug: a second instance of the network, not the one being trained
            return torch.optim.Adam(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).parameters())

    report = _run(Elsewhere(), tmp_path)
    (finding,) = serious(report, "optimizer-coverage")
    assert finding["severity"] == "error" and finding["where"] is None
    assert finding["data"]["foreign_tensors"] == 4 and "never updated" in finding["message"]


def test_submodule_left_out_of_the_optimizer_is_named(tmp_path):
    class HalfOptimized(Classifier):
        def configure_optimizers(self):
            return torch.optim.Adam(self.net[0].parameters(), lr=1e-2)  # bug: net.2 is never trained

    report = _run(HalfOptimized(), tmp_path)
    (finding,) = serious(report, "optimizer-coverage")
    assert finding["severity"] == "warning" and finding["where"] == "net.2"
    assert finding["data"]["parameters"] == ["net.2.weight", "net.2.bias"] and finding["data"]["receive_grad"]


def test_ema_copy_outside_the_optimizer_is_only_info(tmp_path):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    class WithEMA(Classifier):
        def __init__(self):
            super().__init__()
            # Trainable tensors outside the loss graph: they never get a gradient, unlike a forgotten head.
            self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(0.9))

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.ema.update_parameters(self.net)

        def configure_optimizers(self):
            return torch.optim.Adam(self.net.parameters(), lr=1e-2)

    report = _run(WithEMA(), tmp_path)
    _assert_silent(report)
    (info,) = [f for f in report["findings"] if f["check"] == "optimizer-coverage"]
    assert info["severity"] == "info" and info["where"] == "ema" and "AveragedModel" in info["message"]


def test_frozen_backbone_and_param_groups_are_covered(tmp_path):
    class FineTune(Classifier):
        def __init__(self):
            super().__init__()
            self.net[0].requires_grad_(False)  # frozen on purpose: no optimizer needs it

        def configure_optimizers(self):
            return torch.optim.SGD([{"params": self.net[2].weight, "lr": 0.1},
                                    {"params": [self.net[2].bias], "lr": 0.01}], lr=0.1)

    _assert_silent(_run(FineTune(), tmp_path))


def test_manual_optimization_with_two_optimizers_is_silent(tmp_path):
    class GAN(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.generator = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64), nn.Sigmoid())
            self.discriminator = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

        def forward(self, z):
            return self.generator(z)

        def training_step(self, batch, batch_idx):
            real, _ = batch
            opt_g, opt_d = self.optimizers()
            z = torch.randn(real.shape[0], 16)
            bce = nn.functional.binary_cross_entropy_with_logits
            fake = self(z)
            d_loss = bce(self.discriminator(real), torch.ones(len(real), 1)) + bce(
                self.discriminator(fake.detach()), torch.zeros(len(real), 1))
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            g_loss = bce(self.discriminator(fake), torch.ones(len(real), 1))
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()

        def configure_optimizers(self):
            return (torch.optim.Adam(self.generator.parameters(), lr=2e-4),
                    torch.optim.Adam(self.discriminator.parameters(), lr=2e-4))

    report = _run(GAN(), tmp_path)
    # forward(z) cannot take the batch's images: the flow checks say so instead of guessing.
    _assert_silent(report, skipped=("constant-output", "batch-mixing"))
    assert _statuses(report)["optimizer-coverage"] == "pass"


class _GradualUnfreeze(Classifier):
    """net.0 frozen at fit start, unfrozen at the start of epoch 1; ``in_optimizer``: whether the optimizer holds it
    (the healthy way: all parameters, a frozen one simply gets no gradient)."""

    def __init__(self, in_optimizer):
        super().__init__()
        self.in_optimizer = in_optimizer
        self.net[0].requires_grad_(False)

    def on_train_epoch_start(self):
        if self.current_epoch == 1:
            self.net[0].requires_grad_(True)

    def configure_optimizers(self):
        params = self.parameters() if self.in_optimizer else [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=1e-3)


def test_backbone_unfrozen_after_the_optimizer_was_built_is_named(tmp_path):
    report = _run(_GradualUnfreeze(in_optimizer=False), tmp_path, max_epochs=3)
    (finding,) = serious(report, "optimizer-coverage")
    assert finding["severity"] == "warning" and finding["where"] == "net.0" and finding["epoch"] == 1
    assert finding["data"]["parameters"] == ["net.0.weight", "net.0.bias"] and finding["data"]["with_grad"] == 2
    assert "became trainable after the optimizer was built" in finding["message"]


def test_backbone_unfrozen_inside_the_optimizer_is_silent(tmp_path):
    _assert_silent(_run(_GradualUnfreeze(in_optimizer=True), tmp_path, max_epochs=3))


# --------------------------------------------------------------------------- constant-output


@pytest.mark.parametrize("how", ["times_zero", "ignores_input"])
def test_output_that_ignores_the_input_is_an_error(tmp_path, how):
    class Blind(Classifier):
        def forward(self, x):
            x = x * 0 if how == "times_zero" else torch.ones_like(x)  # bug: the input is lost
            return self.net(x)

    report = _run(Blind(), tmp_path)
    (finding,) = serious(report, "constant-output")
    assert finding["severity"] == "error" and finding["where"] == "net"
    # identical rows may still differ by round-off when intra-op threads split the batch (6e-8 on two threads)
    assert finding["data"]["output_spread"] <= 1e-6 and finding["batch_idx"] == 0 and finding["global_step"] == 0
    assert _statuses(report)["batch-mixing"] == "pass"


def test_blockage_inside_a_submodule_is_named(tmp_path):
    class Gate(nn.Module):
        def forward(self, x):
            return x * 0.0  # bug: a gate stuck shut

    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), Gate(), nn.Linear(32, 10))
    (finding,) = serious(_run(Classifier(net=net), tmp_path), "constant-output")
    assert finding["where"] == "net.2"


def test_zero_initialised_head_is_only_info(tmp_path):
    model = Classifier()
    nn.init.zeros_(model.net[2].weight)  # deliberate zero init of the last layer: constant at start, trains fine
    report = _run(model, tmp_path)
    _assert_silent(report)
    (info,) = [f for f in report["findings"] if f["check"] == "constant-output"]
    assert info["severity"] == "info" and info["where"] == "net.2"


def test_batch_of_identical_inputs_uses_a_perturbed_copy(tmp_path):
    x = torch.rand(1, 64).repeat(128, 1)
    report = _run(Classifier(), tmp_path, train=loader(x, torch.zeros(128, dtype=torch.long), batch_size=64))
    assert _statuses(report)["constant-output"] == "pass"
    assert "1 other input" in next(c["detail"] for c in report["checks"] if c["name"] == "constant-output")


# --------------------------------------------------------------------------- batch-mixing


def test_view_instead_of_permute_in_lstm_is_named(tmp_path):
    report = _run(SequenceClassifier(view_bug=True), tmp_path)
    (finding,) = serious(report, "batch-mixing")
    assert finding["severity"] == "warning" and finding["where"] == "lstm"
    assert finding["data"]["leak_fraction"] > 0.5 and finding["data"]["other_samples"]
    assert _statuses(report)["constant-output"] == "pass"


def test_reshape_across_the_batch_in_cnn_is_named(tmp_path):
    report = _run(CNN(mix_batch=True), tmp_path)
    (finding,) = serious(report, "batch-mixing")
    assert finding["where"] == "head"


def test_view_bug_after_an_embedding_is_found_from_token_ids(tmp_path):
    report = _run(TokenGRU(view_bug=True), tmp_path, train=_tokens())
    (finding,) = serious(report, "batch-mixing")
    # Both views mix: which one is named depends on whether the tested batch (9 samples) equals the length (16).
    assert finding["data"]["leak_fraction"] > 0.1 and finding["where"] in ("gru", None)


@pytest.mark.parametrize(
    "make",
    [Classifier, CNN, SequenceClassifier],
    ids=["mlp", "cnn-batchnorm", "lstm"],
)
def test_healthy_models_are_silent(tmp_path, make):
    _assert_silent(_run(make(), tmp_path))


def test_healthy_token_models_are_silent(tmp_path):
    _assert_silent(_run(TokenGRU(), tmp_path / "gru", train=_tokens()))
    report = _run(DemoTransformer(), tmp_path / "demo", train=_tokens(8))
    _assert_silent(report)
    # The demo's forward takes (inputs, target): it is called with the batch's parts and its (B*T, V) output read
    # sample by sample.
    assert any(f["check"] == "constant-output" for f in report["findings"]) is False
    assert "0 over" in next(c["detail"] for c in report["checks"] if c["name"] == "batch-mixing")


def test_dict_batches_are_checked(tmp_path):
    class Dicts(Dataset):
        def __init__(self):
            self.x, self.y = digits(256)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"image": self.x[i], "label": self.y[i]}

    class DictClassifier(Classifier):
        def training_step(self, batch, batch_idx):
            return self.loss_fn(self(batch["image"]), batch["label"])

    report = _run(DictClassifier(), tmp_path, train=DataLoader(Dicts(), batch_size=32))
    _assert_silent(report)


def test_checks_leave_modes_grads_and_rng_alone(tmp_path):
    model = CNN()
    model.net[3].eval()  # an odd mode of the user's: must survive the checks
    seen = {}

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen["modes"] = [m.training for m in pl_module.modules()]
                seen["grads"] = [p.grad for p in pl_module.parameters()]
                seen["rng"] = torch.get_rng_state()
                seen["stats"] = pl_module.net[1].running_mean.clone()

    class Before(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen["modes_before"] = [m.training for m in pl_module.modules()]
                seen["rng_before"] = torch.get_rng_state()
                seen["stats_before"] = pl_module.net[1].running_mean.clone()

    train = loader(*digits(256), batch_size=64)
    t = L.Trainer(callbacks=[Before(), ModelChecks(), Probe()], logger=False, max_epochs=1, limit_train_batches=1,
                  enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                  default_root_dir=tmp_path)
    t.fit(model, train)
    assert seen["modes"] == seen["modes_before"] and seen["modes"].count(False) == 1
    assert all(g is None for g in seen["grads"])
    assert torch.equal(seen["rng"], seen["rng_before"]) and torch.equal(seen["stats"], seen["stats_before"])


def test_forward_that_raises_skips_with_reason(tmp_path):
    class Picky(Classifier):
        def forward(self, x):
            raise RuntimeError("needs a mask")

        def training_step(self, batch, batch_idx):
            return self.loss_fn(self.net(batch[0]), batch[1])

    report = _run(Picky(), tmp_path)
    details = {c["name"]: c["detail"] for c in report["checks"]}
    assert _statuses(report)["constant-output"] == "skipped" and "needs a mask" in details["batch-mixing"]


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="flow_samples"):
        ModelChecks(flow_samples=0)
    with pytest.raises(ValueError, match="get_input"):
        ModelChecks(get_input="x")
    with pytest.raises(ValueError, match="forward_fn"):
        ModelChecks(forward_fn=3)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")
def test_ddp_reports_each_bug_once(tmp_path):
    from _models_flow import MixingHalfOptimized
    from helpers import digits_loaders, trainer
    from lightning.pytorch.loggers import TensorBoardLogger

    from lightning_sanity.callbacks.train_mode import TrainModeMonitor

    logger = TensorBoardLogger(tmp_path, name="logs", version=0)
    t = trainer(tmp_path, [ModelChecks(), TrainModeMonitor(), SanitySummary(print_summary=False)], logger=logger,
                strategy="ddp_spawn", devices=2, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                num_sanity_val_steps=0)
    t.fit(MixingHalfOptimized(), *digits_loaders())
    report = read_report(t.log_dir)
    # Each rank sees its own batch; the findings of both ranks merge into one per bug.
    assert sorted((f["check"], f["where"]) for f in serious(report)) == [
        ("batch-mixing", "net.2"), ("optimizer-coverage", "net.2")]
