"""input-scale and label-distribution in real Trainer runs: each bug fires, healthy data stay silent."""

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import CNN, DictClassifier, DictDataset, RowLSTM, TokenTransformer, my_callbacks, token_loader
from helpers import Classifier, breast_cancer, digits, fit_report, loader, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.data_checks import DataChecks

MINE = ("input-scale", "label-distribution")


def _run(tmp_path, model, train, raises=None, **kwargs):
    L.seed_everything(0)
    options = {k: kwargs.pop(k) for k in ("get_input", "get_target", "data_batches") if k in kwargs}
    settings = dict(max_epochs=1, limit_train_batches=4, num_sanity_val_steps=0)
    settings.update(kwargs)
    return fit_report(tmp_path, model, train, my_callbacks(**options), raises, **settings)


def _mine(report):
    return [f for f in serious(report) if f["check"] in MINE]


def _infos(report, check):
    return [f for f in report["findings"] if f["check"] == check and f["severity"] == "info"]


def _binary(positives: int, negatives: int):
    """Digit 0 against the rest, with the given counts: an imbalanced binary task on real images."""
    x, y = digits()
    pos, neg = torch.where(y == 0)[0][:positives], torch.where(y != 0)[0][:negatives]
    idx = torch.cat([pos, neg])
    return x[idx], (y[idx] == 0).float()


class BinaryHead(Classifier):
    def __init__(self, prior: float = None) -> None:
        super().__init__(classes=1, loss_fn=lambda o, t: F.binary_cross_entropy_with_logits(o.squeeze(-1), t))
        if prior is not None:
            with torch.no_grad():
                self.net[2].weight.mul_(0.01)
                self.net[2].bias.fill_(math.log(prior / (1 - prior)))


# --------------------------------------------------------------------------- healthy: silent


@pytest.mark.parametrize("net", [CNN(), RowLSTM()], ids=["cnn-batchnorm", "lstm"])
def test_healthy_image_data_is_silent_and_constant_border_pixels_are_only_info(tmp_path, net):
    report = _run(tmp_path, Classifier(net=net), loader(*digits(512)))
    assert _mine(report) == []
    (constant,) = _infos(report, "input-scale")
    assert constant["data"]["constant_features"] >= 1  # digits' always-blank corner pixels
    assert "rms" in next(c for c in report["checks"] if c["name"] == "input-scale")["detail"]


def test_integer_tokens_are_not_judged_on_scale(tmp_path):
    report = _run(tmp_path, TokenTransformer(vocab_size=64), token_loader(64))
    assert _mine(report) == []
    assert "integer" in next(c for c in report["checks"] if c["name"] == "input-scale")["detail"]


def test_dict_batches_are_read(tmp_path):
    x, y = digits(512)
    data = DataLoader(DictDataset(x * 255, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    (finding,) = [f for f in _mine(_run(tmp_path, DictClassifier(), data)) if f["check"] == "input-scale"]
    assert finding["where"] == "image"


def test_imbalance_with_a_prior_initialised_bias_is_only_info(tmp_path):
    x, y = _binary(40, 600)
    report = _run(tmp_path, BinaryHead(prior=float(y.mean())), loader(x, y))
    assert _mine(report) == []
    (info,) = _infos(report, "label-distribution")
    assert "already follows the label prior" in info["message"]


def test_class_weights_that_balance_the_loss_count_as_handled(tmp_path):
    x, y = digits()
    keep = torch.cat([torch.where(y == 0)[0][:15], torch.where(y != 0)[0][:700]])
    x, y = x[keep], y[keep]
    weight = 1.0 / torch.bincount(y, minlength=10).float()
    model = Classifier(loss_fn=lambda o, t: F.cross_entropy(o, t, weight=weight / weight.sum() * 10))
    assert _mine(_run(tmp_path, model, loader(x, y))) == []


def test_model_that_normalises_its_input_is_only_info(tmp_path):
    x, y = digits(512)

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            return self.net(x / 255.0)

    report = _run(tmp_path, Classifier(net=Scaled()), loader(x * 255, y))
    assert _mine(report) == []
    scale = [f for f in _infos(report, "input-scale") if "unit scale" in f["message"]]
    assert scale and scale[0]["data"]["first_op"] in ("__truediv__", "div")


# --------------------------------------------------------------------------- input-scale fires


def test_raw_pixels_fire(tmp_path):
    x, y = digits(512)
    report = _run(tmp_path, Classifier(net=CNN()), loader(x * 255, y))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("input-scale", "warning", "batch[0]")
    assert finding["data"]["abs_max"] == 255 and finding["data"]["rms"] > 20
    assert "255" in finding["advice"]


def test_nan_inputs_fire_an_error(tmp_path):
    x, y = digits(512)
    x = x.clone()
    x[::40, 5] = float("nan")
    report = _run(tmp_path, Classifier(), loader(x, y), limit_train_batches=1)
    errors = [f for f in _mine(report) if f["severity"] == "error"]
    assert [(f["check"], f["where"]) for f in errors] == [("input-scale", "batch[0]")]
    assert errors[0]["data"]["nonfinite"] >= 1


def test_identical_samples_within_each_batch_fire(tmp_path):
    x, y = digits(512)

    class Broken(DictDataset):
        def __getitem__(self, i):
            return {"image": self.x[(i // 32) * 32], "label": self.y[i]}  # ignores the index within a block

    data = DataLoader(Broken(x, y), batch_size=32)
    errors = [f for f in _mine(_run(tmp_path, DictClassifier(), data)) if f["check"] == "input-scale"]
    assert [(f["severity"], f["where"]) for f in errors] == [("error", "image")]


# --------------------------------------------------------------------------- label-distribution fires


def test_all_labels_equal_fire_an_error(tmp_path):
    x, y = digits(512)
    report = _run(tmp_path, Classifier(), loader(x, torch.full_like(y, 3)))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("label-distribution", "error", "batch[1]")


def test_data_sorted_by_label_without_shuffling_fires(tmp_path):
    x, y = digits()
    order = torch.argsort(y, stable=True)
    report = _run(tmp_path, Classifier(), loader(x[order], y[order], shuffle=False))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("label-distribution", "warning")
    assert "shuffle=True" in finding["advice"] and finding["data"]["cramers_v"] > 0.6


def test_identical_inputs_with_conflicting_labels_fire(tmp_path):
    x, y = digits(600)
    report = _run(tmp_path, Classifier(), loader(torch.cat([x, x]), torch.cat([y, (y + 1) % 10])))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("label-distribution", "warning")
    assert finding["data"]["groups"] >= 2


def test_heavy_imbalance_with_a_default_init_fires_with_the_bias(tmp_path):
    x, y = _binary(40, 600)
    report = _run(tmp_path, BinaryHead(), loader(x, y))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("label-distribution", "warning")
    rate = finding["data"]["positive_rate"]
    assert finding["data"]["best_bias"][0] == pytest.approx(math.log(rate / (1 - rate)), abs=2e-3)
    assert "net.2.bias" in finding["advice"]


def _digits_with_counts(counts):
    """Digits subsampled to ``counts[k]`` images of class k."""
    x, y = digits()
    idx = torch.cat([torch.where(y == k)[0][:c] for k, c in enumerate(counts)])
    return x[idx], y[idx]


def test_rare_tail_classes_among_even_ones_are_only_info(tmp_path):
    # An ordinal target's tails (a count of distinct items, an age bin): most/least frequent far above 10, but no
    # class holds most labels and the prior's entropy is near an even split's.
    report = _run(tmp_path, Classifier(), loader(*_digits_with_counts([40, 70, 110, 130, 70, 60, 25, 10, 4])))
    assert _mine(report) == [], _mine(report)
    (finding,) = [f for f in _infos(report, "label-distribution") if "imbalanced" in f["message"]]
    assert finding["data"]["imbalance_ratio"] >= 10 and finding["data"]["shannon_balance"] > 0.44, finding["data"]


def test_a_dominant_class_among_many_still_warns(tmp_path):
    report = _run(tmp_path, Classifier(), loader(*_digits_with_counts([170] + [12] * 9)))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("label-distribution", "warning"), finding
    assert "uniform prediction" in finding["message"]


class DigitsGAN(L.LightningModule):
    """A small GAN with manual optimization: the batch holds (images, digit labels), the losses compare the
    discriminator's logits with ones and zeros made in the step, never with the labels."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(8, 32), nn.LeakyReLU(0.2), nn.Linear(32, 64), nn.Sigmoid())
        self.discriminator = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        real, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(real.shape[0], 8)
        d_real, d_fake = self.discriminator(real), self.discriminator(self.generator(z).detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))) / 2
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        d_gen = self.discriminator(self.generator(z))
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

    def configure_optimizers(self):
        return [torch.optim.Adam(self.generator.parameters(), 2e-4), torch.optim.Adam(self.discriminator.parameters(), 2e-4)]


def test_gan_losses_against_ones_and_zeros_leave_the_unused_digit_labels_alone(tmp_path):
    # The first recognised loss is a binary cross-entropy against `torch.ones_like(...)`; the batch's labels are
    # digits 0..9 the GAN never uses: no "binary targets must lie in [0, 1]" error.
    x, y = digits(512)
    report = _run(tmp_path, DigitsGAN(), loader(x, y))
    assert _mine(report) == []
    # The same GAN on dummy all-zero labels: constant, but unused, so only worth knowing.
    report = _run(tmp_path / "zeros", DigitsGAN(), loader(x, torch.zeros_like(y)))
    assert _mine(report) == []
    assert [f["severity"] for f in report["findings"] if f["check"] == "label-distribution"] == ["info"]


def test_binary_targets_out_of_range_in_the_batch_still_fire(tmp_path):
    # The loss compares with the batch's labels (cast and reshaped): -1/+1 targets are certainly wrong.
    x, y = breast_cancer()
    model = Classifier(in_features=30, classes=1,
                       loss_fn=lambda o, t: F.binary_cross_entropy_with_logits(o, t.float().unsqueeze(-1)))
    report = _run(tmp_path, model, loader(x, y * 2 - 1))
    labels = [f for f in _mine(report) if f["check"] == "label-distribution"]
    assert [(f["severity"], f["where"]) for f in labels] == [("error", "batch[1]")]
    assert "[0, 1]" in labels[0]["message"]


def test_labels_beyond_the_output_width_fire_even_when_the_step_raises(tmp_path):
    x, y = digits(512)
    report = _run(tmp_path, Classifier(classes=9), loader(x, y), raises=IndexError)
    labels = [f for f in _mine(report) if f["check"] == "label-distribution"]
    assert [(f["severity"], f["data"]["num_classes"]) for f in labels] == [("error", 9)]


def test_unreadable_batches_skip_with_a_reason(tmp_path):
    class Opaque(Classifier):
        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch.x), batch.y)

    class Box:
        def __init__(self, x, y):
            self.x, self.y = x, y

    x, y = digits(256)
    data = DataLoader(list(zip(x, y)), batch_size=64, collate_fn=lambda items: Box(*map(torch.stack, zip(*items))))
    report = _run(tmp_path, Opaque(), data)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["input-scale"]["status"] == "skipped" and "get_input" in checks["input-scale"]["detail"]
    assert checks["label-distribution"]["status"] == "skipped"
    report = _run(tmp_path / "fns", Opaque(), data, get_input=lambda b: b.x * 255, get_target=lambda b: b.y)
    assert [f["where"] for f in _mine(report)] == ["get_input(batch)"]


def test_options_are_validated():
    with pytest.raises(ValueError, match="get_input"):
        DataChecks(get_input=3)
    with pytest.raises(ValueError, match="data_batches"):
        DataChecks(data_batches=True)


# --------------------------------------------------------------------------- in-batch contrastive targets


class _Contrastive(L.LightningModule):
    """InfoNCE on two noisy views of digits. ``targets``: ``"arange"`` (each row's positive is its own pair, the
    healthy in-batch form), ``"zeros"`` (the bug: a MoCo target on square in-batch logits) or ``"moco"`` (MoCo-style
    ``[positive | queue]`` logits, where a constant column 0 is right)."""

    def __init__(self, targets: str) -> None:
        super().__init__()
        self.targets = targets
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.register_buffer("queue", F.normalize(torch.randn(48, 32, generator=torch.Generator().manual_seed(0)), dim=-1))

    def training_step(self, batch, batch_idx):
        x = batch[0]
        z1 = F.normalize(self.encoder(x + 0.1 * torch.randn_like(x)), dim=-1)
        z2 = F.normalize(self.encoder(x + 0.1 * torch.randn_like(x)), dim=-1)
        if self.targets == "moco":
            logits = torch.cat([(z1 * z2).sum(-1, keepdim=True), z1 @ self.queue.T], dim=1) / 0.1
            labels = torch.zeros(len(x), dtype=torch.long)
        else:
            logits = z1 @ z2.T / 0.1
            labels = torch.zeros(len(x), dtype=torch.long) if self.targets == "zeros" else torch.arange(len(x))
        return F.cross_entropy(logits, labels)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("with_labels", [True, False], ids=["xy-batches", "x-only-batches"])
def test_constant_targets_on_in_batch_logits_are_an_error(tmp_path, with_labels):
    x, y = digits(256)
    train = loader(x, y, batch_size=32) if with_labels else DataLoader(
        torch.utils.data.TensorDataset(x), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    report = _run(tmp_path, _Contrastive("zeros"), train)
    (finding,) = [f for f in serious(report) if f["check"] == "label-distribution"]
    assert finding["severity"] == "error" and finding["data"]["rows"] == 32 and finding["data"]["target"] == 0
    assert "torch.arange" in finding["advice"] and "32 x 32" in finding["message"]


@pytest.mark.parametrize("targets", ["arange", "moco"])
def test_healthy_contrastive_targets_are_silent(tmp_path, targets):
    x, y = digits(256)
    report = _run(tmp_path, _Contrastive(targets), loader(x, y, batch_size=32))
    assert [f for f in serious(report) if f["check"] == "label-distribution"] == []
