"""Per-step cost cuts that must not change what is measured: the same hashes on both paths, the norm monitor's
batch-start hook retired once its gradient probe is done while every step is still measured."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.checks import splits as S


def test_hashes_are_the_weighted_sums_modulo_2_64_in_any_block() -> None:
    """Elementwise hashing gives the integer matrix product's hashes, and rows hashed in one block or batch by batch
    get the same ones (the split-overlap monitor hashes gathered blocks)."""
    g = torch.Generator().manual_seed(0)
    for x in (torch.randn(6, 100, generator=g), torch.randint(0, 50, (5, 120), generator=g),
              torch.randn(4, 3, 40, generator=g).double()):
        rows = S.sample_rows(x)
        bits = rows.long() if not rows.is_floating_point() else None
        if bits is None:
            raw = (rows + 0.0).contiguous().view(torch.int64 if rows.dtype == torch.float64 else torch.int32)
            bits = (raw ^ (raw >> 13)).long()
        else:
            bits = bits ^ (bits >> 13)
        fp = S.split_fingerprints(x)
        weights = S.hash_weights(bits.shape[1], torch.device("cpu"))
        mask = torch.zeros(bits.shape[1], dtype=torch.long)
        mask[: bits.shape[1] // 2] = 1  # sample_rows puts the fixed random half first
        expected = bits @ torch.stack([weights, weights * mask, weights * (1 - mask)], 1)
        assert torch.equal(fp, expected)
        assert torch.equal(S.fingerprints(x), expected[:, 0])
        assert torch.equal(torch.cat([S.hash_rows(rows[:2]), S.hash_rows(rows[2:])]), fp)


def test_wide_samples_hash_a_bounded_number_of_values() -> None:
    x = torch.randn(3, 3, 64, 64)
    assert S.sample_rows(x).shape == (3, S.FINGERPRINT_VALUES)
    y = x.clone()
    y[1, 2, 63, 63] += 1.0  # the last value is always among the sampled ones
    assert (S.fingerprints(x) == S.fingerprints(y)).tolist() == [True, False, True]


class _Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.unused = nn.Linear(4, 8), nn.Linear(8, 8)  # `unused` gets no gradient: the probe watches it
        self.head = nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(torch.relu(self.body(x))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_norm_monitor_retires_its_batch_start_hook_and_still_measures_every_step() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    monitor = NormMonitor(norms_log_every_n_steps=4)
    trainer = L.Trainer(max_epochs=1, callbacks=[monitor], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(_Net(), DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8))
    assert monitor.__dict__.get("on_train_batch_start", "live") is None
    assert monitor._probe.targets == ["unused"] and monitor._probe.armed_once  # the probe had its batch first
    # every one of the 6 steps: read at the logging step 4, the last two still buffered (read by conclude)
    assert int(monitor._history.counts.observed.max()) + monitor._meter.row == 6
