"""Replay bundles: what they hold, replaying them deterministically, and fast-forwarding a seeded run."""

import collections
import itertools
import operator
import random

import lightning as L
import numpy as np
import pytest
import torch
from _models_nonfinite import Injected
from helpers import digits, digits_loaders, loader, read_report, serious, trainer
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity
import lightning_sanity.replays as replay_module
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
from lightning_sanity.replays import FastForward, load_bundle
from lightning_sanity.replays import rng as replay_rng
from lightning_sanity.replays.bundle import make_bundle, write_bundle
from lightning_sanity.replays.rng import capture_rng_states

AT = (1, 3)
Batch = collections.namedtuple("Batch", "x y")  # a batch type the safe loader does not know


class _Witness(Callback):
    """Records, at the start of one step, what the bundle of that step must hold."""

    def __init__(self, at):
        self.at, self.seen = at, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            self.seen = {
                "batch": [t.clone() for t in batch],
                "state": {k: v.clone() for k, v in pl_module.state_dict().items()},
                "rng": torch.get_rng_state().clone(),
                "numpy": np.random.get_state()[1].copy(),
                "python": random.getstate(),
                "exp_avg": [s["exp_avg"].clone() for s in trainer.optimizers[0].state.values()],
            }


def _global_rng_loader():
    # No generator of its own: the shuffle order comes from the global RNG, as in most users' code.
    x, y = digits(512)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)


def _run(tmp_path, callbacks, train=None, **kwargs):
    L.seed_everything(7, workers=True)
    model = Injected("log", at=AT, dropout=0.3)
    settings = dict(max_epochs=3, limit_train_batches=6, limit_val_batches=0)
    settings.update(kwargs)
    t = trainer(tmp_path, callbacks, **settings)
    t.fit(model, train if train is not None else _global_rng_loader())
    return t


@pytest.fixture(scope="module")
def nan_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nan_run")
    witness = _Witness(AT)
    t = _run(tmp, [witness, NonFiniteSentinel(), SanitySummary(print_summary=False)])
    (finding,) = serious(read_report(t.log_dir), "non-finite")
    return {"path": f"{t.log_dir}/{finding['replay']}", "finding": finding, "witness": witness.seen}


def test_bundle_holds_the_step_as_it_started(nan_run):
    bundle = load_bundle(nan_run["path"])  # weights_only: plain containers and tensors
    seen = nan_run["witness"]
    assert bundle["format"] == "lightning_sanity.replay/1" and bundle["check"] == "non-finite"
    assert (bundle["epoch"], bundle["batch_idx"], bundle["global_step"], bundle["seed"]) == (1, 3, 9, 7)
    assert bundle["where"] == "loss" and bundle["rank"] == 0
    assert all(torch.equal(a, b) for a, b in zip(bundle["batch"], seen["batch"]))
    # Weights from before the bad update, optimizer state from before it, RNG states from the start of the step.
    assert all(torch.equal(bundle["model_state"][k], v) for k, v in seen["state"].items())
    exp_avg = [s["exp_avg"] for s in bundle["optimizer_states"][0]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(exp_avg, seen["exp_avg"]))
    assert torch.equal(bundle["rng"]["torch"], seen["rng"])
    assert np.array_equal(bundle["rng"]["numpy"]["keys"].numpy(), seen["numpy"].astype(np.int64))
    assert tuple(bundle["rng"]["python"]["state"]) == seen["python"][1]
    assert set(bundle["versions"]) >= {"torch", "lightning", "numpy", "python", "lightning_sanity"}
    assert bundle["model_class"] == "_models_nonfinite:Injected" and bundle["hparams"]["fault"] == "log"
    assert bundle["trainer"]["current_epoch"] == 1 and bundle["precision"] == "32-true"


def test_replay_is_deterministic_and_leaves_the_callers_rng_alone(nan_run):
    fresh = [Injected("log", at=AT, dropout=0.3) for _ in range(2)]  # building a model draws from the RNG
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    first = lightning_sanity.replay(nan_run["path"], fresh[0])
    second = replay_module.replay(nan_run["path"], fresh[1])
    assert str(first) == str(second)
    assert (first.reproduced, first.module, first.op) == (second.reproduced, second.module, second.op)
    assert first.reproduced and first.module == "net.1"
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_fast_forward_from_the_seed_gives_the_same_batch(nan_run, tmp_path):
    # Same seed, same construction, a fit that stops at the reported epoch and batch.
    finding = nan_run["finding"]
    ff = FastForward(finding["epoch"], finding["batch_idx"])
    _run(tmp_path, [ff], logger=None)
    bundle = load_bundle(nan_run["path"])
    assert all(torch.equal(a, b) for a, b in zip(ff.batch, bundle["batch"]))
    assert all(torch.equal(ff.model_state[k], v) for k, v in bundle["model_state"].items())


def test_fast_forward_by_iterating_a_seeded_loader(tmp_path):
    # A loader with its own seeded generator can simply be iterated to the reported epoch and batch, taking as
    # many batches per epoch as the run did (here limit_train_batches=6: a sampler that reaches the end of an
    # epoch draws from the generator once more than one that is cut short).
    t = _run(tmp_path, [NonFiniteSentinel(), SanitySummary(print_summary=False)], train=digits_loaders()[0])
    (finding,) = serious(read_report(t.log_dir), "non-finite")
    L.seed_everything(finding["seed"], workers=True)
    again = digits_loaders()[0]
    for _ in range(finding["epoch"]):
        for _ in itertools.islice(again, 6):
            pass
    batch = next(b for i, b in enumerate(again) if i == finding["batch_idx"])
    bundle = load_bundle(f"{t.log_dir}/{finding['replay']}")
    assert all(torch.equal(a, b) for a, b in zip(batch, bundle["batch"]))


def test_hand_made_bundle_with_broken_weights(tmp_path):
    model = Injected("log", at=(99, 0))
    with torch.no_grad():
        model.net[3].weight[0, 0] = float("nan")
    x, y = digits(16)
    path = write_bundle(tmp_path / "b.pt", make_bundle(object(), model, [x, y], 0, capture_rng_states(),
                                                       check="non-finite", where="net.3.weight", kind="weights"))
    result = lightning_sanity.replay(path, Injected("log", at=(99, 0)))
    assert result.reproduced and result.nonfinite_weights == ["net.3.weight"] and result.module == "net.3"


def test_bundles_that_need_full_unpickling_and_bad_paths(tmp_path):
    model = Injected("log", at=(99, 0))
    x, y = digits(8)
    path = write_bundle(tmp_path / "nt.pt", make_bundle(object(), model, Batch(x, y), 0, capture_rng_states(),
                                                        check="non-finite"))
    with pytest.raises(ValueError, match="trusted=True"):
        load_bundle(path)
    assert load_bundle(path, trusted=True)["batch"].x.shape == (8, 64)
    with pytest.raises(FileNotFoundError, match="no replay bundle"):
        load_bundle(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lightning_sanity replay bundle"):
        load_bundle(tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="do not fit"):
        lightning_sanity.replay(path, Injected("sqrt", at=(99, 0)), trusted=True)
    with pytest.raises(ValueError, match="batch_idx=-1"):
        FastForward(0, -1)


def _numpy_case():
    np.random.seed(3)
    actions = [lambda: None, np.random.rand, np.random.normal, lambda: np.random.normal(size=3),
               lambda: np.random.seed(7), lambda: np.random.set_state(np.random.get_state()), np.random.standard_normal]
    same = lambda got, want: got[0] == want[0] and np.array_equal(got[1], want[1]) and got[2:] == want[2:]  # noqa: E731
    return replay_rng._NumpyState(), np.random.get_state, np.random.set_state, actions, same


def _python_case():
    random.seed(3)
    actions = [lambda: None, random.random, lambda: random.gauss(0, 1), lambda: random.getrandbits(100),
               lambda: random.seed(7), lambda: random.setstate(random.getstate()), lambda: random.gauss(0, 1)]
    return replay_rng._PythonState(), random.getstate, random.setstate, actions, operator.eq


@pytest.mark.parametrize("case", [_numpy_case, _python_case], ids=["numpy", "python"])
def test_rng_state_is_reused_only_while_the_generator_has_not_moved(case):
    # Draws of every kind between reads, reseeding, set_state, and a Gaussian cached by one step and used up by
    # the next (the generator's bytes do not move then): every read must equal a full read.
    saved_numpy, saved_python = np.random.get_state(), random.getstate()
    try:
        reader, full, _, actions, same = case()
        # Then a reseed and quiet steps (the shortcut's case), then one Gaussian per step.
        schedule = [(i * 5) % len(actions) for i in range(700)] + [4] + [0] * 50 + [6] * 50
        reused = 0
        for i, action in enumerate(schedule):
            actions[action]()
            before = reader._state
            got = reader.get()
            assert same(got, full()), i
            reused += got is before
        assert reader._fast  # the shortcut was checked against a full read and kept
        assert reused >= 50  # and it was taken
    finally:
        np.random.set_state(saved_numpy)
        random.setstate(saved_python)


@pytest.mark.parametrize("case", [_numpy_case, _python_case], ids=["numpy", "python"])
def test_isolate_rng_puts_back_every_state_it_skips_setting(case):
    # isolate_rng leaves a generator alone when its reader finds it as captured: every kind of draw in the block,
    # a reseed, a set_state and a cached Gaussian used up without moving the bytes must still be undone.
    saved_numpy, saved_python = np.random.get_state(), random.getstate()
    try:
        _, full, _, actions, same = case()
        for i, action in enumerate([*actions, *actions[::-1]]):
            before = full()
            with replay_rng.isolate_rng():
                action()
                action()
            assert same(full(), before), i
    finally:
        np.random.set_state(saved_numpy)
        random.setstate(saved_python)


def test_what_the_checks_share_within_a_step_goes_with_its_trainer():
    # Found by weak reference, also on the fast path that remembers the last Trainer: nothing the suite shares
    # (the step capture with its batch and BatchNorm copies, the reads, the norms) outlives its Trainer, and a new
    # Trainer never gets an old one's state.
    import gc
    import weakref

    from lightning_sanity.callbacks import step as step_state

    first = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    capture = step_state.capture_for(first)
    assert step_state.capture_for(first) is capture  # the remembered one
    gone = weakref.ref(capture)
    del first, capture
    gc.collect()
    assert gone() is None
    second = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    assert step_state.capture_for(second).key is None


def test_step_reads_give_the_same_values_read_part_by_part_or_gathered():
    # The CPU reads each part on its own, accelerators gather them into one transfer: the values must not differ.
    from lightning_sanity.callbacks import step as step_state

    parts = [torch.tensor([1.5, -2.0, float("nan")]), torch.tensor(4.0), torch.tensor([[5, 6], [7, 8]]),
             torch.tensor([True, False])]
    each, gathered = step_state._read_each(parts), step_state._read_gathered(parts)
    want = [[1.5, -2.0, float("nan")], [4.0], [5.0, 6.0, 7.0, 8.0], [1.0, 0.0]]
    for got in (each, gathered):
        assert [len(v) for v in got] == [3, 1, 4, 2]
        assert all(type(x) is float for v in got for x in v)
        assert str(got) == str(want)  # nan == nan as text
