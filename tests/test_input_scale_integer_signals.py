"""input-scale on 8/16-bit integer samples (PCM audio, pixels): judged as values unless the model rescales them
first, or looks them up as ids."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _clips(n: int = 256, length: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """int16 tones of two frequencies, at full 16-bit amplitude: the label is the frequency."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.arange(length)
    phase = torch.rand(n, 1, generator=g) * 6.28
    wave = torch.sin(phase + t * (0.05 + 0.1 * y[:, None]))
    return (wave * 30000).round().to(torch.int16)[:, None, :], y


class Tones(L.LightningModule):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.embed = nn.Embedding(1024, 8) if how == "ids" else None
        self.conv = nn.Conv1d(8 if how == "ids" else 1, 8, 9)
        self.head = nn.Linear(8, 2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if self.how == "ids":  # 16-bit codebook indices (a quantised signal) looked up in a table: ids, not values
            x = self.embed(wav[:, 0].long()).transpose(1, 2)
        else:
            x = wav.float() / 32768 if self.how == "scaled" else wav.float()
        return self.head(F.relu(self.conv(x)).mean(-1))

    def training_step(self, batch, batch_idx):
        wav, y = batch
        return F.cross_entropy(self(wav), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _report(tmp_path, how: str) -> dict:
    x, y = _clips()
    if how == "ids":
        x = (x.int() // 64 + 512).to(torch.int16)  # codes 43..980 of a 1024-entry codebook
    t = trainer(tmp_path, [DataChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=3)
    t.fit(Tones(how), DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True))
    return read_report(t.log_dir)


def test_raw_int16_samples_fed_to_a_conv_warn(tmp_path):
    (finding,) = serious(_report(tmp_path, "raw"), "input-scale")
    assert finding["data"]["rms"] > 1000 and finding["data"]["first_op"] == "conv1d"


def test_int16_samples_divided_by_32768_stay_silent(tmp_path):
    assert not serious(_report(tmp_path, "scaled"), "input-scale")


def test_int16_codes_looked_up_in_an_embedding_are_not_judged(tmp_path):
    report = _report(tmp_path, "ids")
    assert not serious(report, "input-scale")
    detail = next(c for c in report["checks"] if c["name"] == "input-scale")["detail"]
    assert "integer ids" in detail
