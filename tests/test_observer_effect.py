"""With a fixed seed, a run with the suite ends with bit-identical weights to the same run without it."""

import lightning as L
import torch
from helpers import Classifier, digits, fit, trainer
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


class _Stream(torch.utils.data.Dataset):
    """Blocks of a token stream whose next token is mostly the current one plus one (Lightning's WikiText2 layout)."""

    def __init__(self, n: int = 3000, vocab: int = 20, block: int = 35) -> None:
        g = torch.Generator().manual_seed(0)
        step = torch.where(torch.rand(n, generator=g) < 0.8, 1, torch.randint(vocab, (n,), generator=g))
        self.data, self.block = torch.cumsum(step, 0) % vocab, block

    def __len__(self) -> int:
        return len(self.data) // self.block - 1

    def __getitem__(self, i: int):
        start = i * self.block
        return self.data[start:start + self.block], self.data[start + 1:start + self.block + 1]


def _lstm_run(tmp_path, callbacks) -> dict:
    from lightning.pytorch.demos.lstm import LightningLSTM, SequenceSampler, SimpleLSTM

    class Demo(LightningLSTM):  # Lightning's own demo, on data that needs no download
        def prepare_data(self) -> None:
            pass

        def train_dataloader(self):
            data = _Stream()
            return DataLoader(data, batch_sampler=SequenceSampler(data, batch_size=20))

    L.seed_everything(0)
    model = Demo(vocab_size=20)
    model.model = SimpleLSTM(vocab_size=20, ninp=16, nhid=16, nlayers=2)
    trainer(tmp_path, callbacks, max_epochs=3).fit(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_stateful_lstm_demo_with_dropout_is_bit_identical(tmp_path):
    # Its forward takes a hidden state and drops out: a leakage probe that failed half-way through a forward used
    # to leave its dropout draws consumed (Lightning's isolate_rng restores nothing when its block raises).
    bare = _lstm_run(tmp_path / "bare", callbacks=[])
    watched = _lstm_run(tmp_path / "watched", callbacks=lightning_sanity.default_callbacks(print_summary=False))
    for name in bare:
        assert torch.equal(bare[name], watched[name]), f"{name} differs with the suite attached"
