"""constant-output at fit start on a vector-quantised autoencoder whose every input snaps to the same code at init,
in real Trainer runs: with the straight-through estimator the gradient still carries the input (info, it can
learn); without it the encoder never hears from the loss and the constant output is an error."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.model_checks import ModelChecks


class TinyVQ(L.LightningModule):
    """Encoder outputs near 0, a codebook far from them: one code (the smallest) is nearest for every input."""

    def __init__(self, straight_through: bool):
        super().__init__()
        self.straight_through = straight_through
        self.encoder = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4 * 8))
        self.codebook = nn.Embedding(16, 8)
        with torch.no_grad():
            self.encoder[2].weight.mul_(0.01)
            self.encoder[2].bias.zero_()
            self.codebook.weight.copy_(torch.randn(16, 8, generator=torch.Generator().manual_seed(3)) * 2.0)
        self.decoder = nn.Sequential(nn.Linear(4 * 8, 64), nn.ReLU(), nn.Linear(64, 64))

    def forward(self, x):
        z = self.encoder(x).view(-1, 4, 8)
        codes = torch.cdist(z, self.codebook.weight.expand(z.shape[0], -1, -1)).argmin(-1)
        q = self.codebook(codes)
        z_q = z + (q - z).detach() if self.straight_through else q
        self._vq = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        return self.decoder(z_q.flatten(1))

    def training_step(self, batch, batch_idx):
        x, _ = batch
        return F.mse_loss(self(x), x) + self._vq

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _constant(tmp_path, straight_through):
    L.seed_everything(0)
    x, y = digits(256)
    t = fit(TinyVQ(straight_through), tmp_path, loader(x, y, batch_size=32), None,
            callbacks=[ModelChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2,
            limit_val_batches=0, num_sanity_val_steps=0)
    report = read_report(t.log_dir)
    return [f for f in report["findings"] if f["check"] == "constant-output"], serious(report, "constant-output")


def test_straight_through_quantiser_snapped_to_one_code_is_info(tmp_path):
    found, serious_ = _constant(tmp_path, straight_through=True)
    assert serious_ == [] and [f["data"]["gradient_change"] > 0 for f in found] == [True], found


def test_quantiser_without_straight_through_is_an_error(tmp_path):
    _, serious_ = _constant(tmp_path, straight_through=False)
    assert [f["severity"] for f in serious_] == ["error"], serious_
