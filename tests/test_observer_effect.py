"""With a fixed seed, a run with the suite ends with bit-identical weights to the same run without it."""

import lightning as L
import torch
from helpers import Classifier, digits, fit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity


def _model() -> Classifier:
    # Dropout and BatchNorm make the run sensitive to any RNG draw or any change of mode or statistics.
    net = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Dropout(0.3), nn.Linear(48, 10))
    return Classifier(net=net, lr=5e-3)


def _run(tmp_path, callbacks) -> dict:
    L.seed_everything(0, workers=True)
    x, y = digits(600)
    # No generator of its own: the loader draws its shuffle seed from the global RNG, as most users' do.
    train = DataLoader(TensorDataset(x[:480], y[:480]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[480:], y[480:]), batch_size=32)
    model = _model()
    fit(model, tmp_path, train, val, callbacks=callbacks, max_epochs=3, log_every_n_steps=2)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_suite_leaves_training_bit_identical(tmp_path):
    bare = _run(tmp_path / "bare", callbacks=[])
    watched = _run(tmp_path / "watched", callbacks=lightning_sanity.default_callbacks(print_summary=False))
    assert bare.keys() == watched.keys()
    for name in bare:
        assert torch.equal(bare[name], watched[name]), f"{name} differs with the suite attached"
