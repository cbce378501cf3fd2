"""weight-growth on embeddings: a codebook initialised far below nn.Embedding's N(0, 1) default grows toward the
scale of the vectors it is compared with (learning); one pushed tenfold past that scale still fires."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn


class _VQ(L.LightningModule):
    """A VQ autoencoder on digits: four 16-d codes per image snapped to a 64-entry codebook initialised U(-1/64, 1/64), the
    straight-through estimator, codebook and commitment losses; ``reward``: a term that rewards a large codebook
    (a sign error on a regulariser)."""

    def __init__(self, reward: float = 0.0, lr: float = 3e-3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
        self.codebook = nn.Embedding(64, 16)
        nn.init.uniform_(self.codebook.weight, -1 / 64, 1 / 64)
        self.decoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
        self.reward, self.lr = reward, lr

    def training_step(self, batch, batch_idx):
        x, _ = batch
        z = self.encoder(x).view(-1, 16)  # four 16-d codes per image
        q = self.codebook(torch.cdist(z, self.codebook.weight).argmin(1))
        loss = F.mse_loss(self.decoder((z + (q - z).detach()).view(-1, 64)), x)
        loss = loss + F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        return loss - self.reward * self.codebook.weight.norm()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("reward", [0.0, 1.0])
def test_small_init_codebook_growing_toward_its_data_is_not_weight_growth(tmp_path, reward):
    L.seed_everything(0)
    x, y = digits()
    x = (x - x.mean()) / x.std()  # standardised pixels: codes of about unit scale
    model = _VQ(reward)
    first = model.codebook.weight.norm().item()
    report = read_report(fit(model, tmp_path, loader(x[:1280], y[:1280], batch_size=32), max_epochs=7).log_dir)
    found = serious(report, "weight-growth")
    if not reward:
        assert model.codebook.weight.norm().item() > 10 * first  # grew more than the 10x bar from its start
        assert not found, [f["message"] for f in found]
        return
    assert any("codebook" in f["data"]["layers"] for f in found), [f["message"] for f in found]
