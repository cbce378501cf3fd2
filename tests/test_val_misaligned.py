"""val-divergence's ``misaligned`` pattern on real Trainers: a segmentation net whose validation images are flipped
against their masks fires; the same net with validation read the training way stays silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks import dense_alignment as DA

SIZE = 16


def _tiles(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright blobs on noise, with their masks, ``(n, 1, 16, 16)`` each."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    centre = torch.rand(n, 2, 1, 1, generator=g) * (SIZE - 6) + 3
    radius = torch.rand(n, 1, 1, generator=g) * 2 + 2
    masks = (((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) <= radius ** 2).float()[:, None]
    images = masks + 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    return images, masks


class Segmenter(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(8, 1, 1))

    def _loss(self, batch):
        x, m = batch
        logits = self.net(x)
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * m).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + m.sum((1, 2, 3)) + 1)
        return F.binary_cross_entropy_with_logits(logits, m) + dice.mean()

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("flipped", [True, False], ids=["val-images-flipped", "val-as-training"])
def test_validation_masks_not_registered_with_their_images(tmp_path, flipped):
    train, val = _tiles(320, 0), _tiles(80, 1)
    val_images = val[0].flip(2) if flipped else val[0]  # rows written bottom-up; the masks top-down
    L.seed_everything(0)
    t = trainer(tmp_path, [ValDivergence(), SanitySummary(print_summary=False)], logger=None, max_epochs=4)
    t.fit(Segmenter(), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
          DataLoader(TensorDataset(val_images, val[1]), batch_size=40))
    report = read_report(t.log_dir)
    found = serious(report, "val-divergence")
    if flipped:
        assert [f["data"]["pattern"] for f in found] == ["misaligned"]
        assert found[0]["data"]["train_correlation"] > 0.5 > 0.2 > found[0]["data"]["val_correlation"]
    else:
        assert found == []


def test_correlations_need_one_target_map_of_the_input_shape():
    x = torch.randn(4, 3, 8, 8)
    assert DA.sample_correlations(x, torch.rand(4, 8, 8)).shape == (4, 3)
    assert DA.sample_correlations(x, torch.randint(0, 3, (4,))) is None  # class labels
    assert DA.sample_correlations(x, torch.rand(4, 2, 8, 8)) is None  # two target channels
    assert DA.sample_correlations(torch.randn(4, 3, 4, 4), torch.rand(4, 4, 4)) is None  # 16 pixels
    assert torch.isnan(DA.sample_correlations(x, torch.zeros(4, 8, 8))).all()  # an empty mask says nothing
