"""Bug: a CenterNet-style single-object detector on synthetic canvases. Each 20x20 canvas holds one sklearn digit
resized to a side of 6, 8, 10 or 12 pixels and pasted at a random position (seeded torch.Generator). A small conv
net predicts a centre heatmap (pixel BCE against a Gaussian target, sigma 1.5) and a size map; the size is
regressed with L1 only at the object's centre pixel, as CenterNet does.

The centre pixel is selected with `mask = (heat == 1.0)`, copied from a CenterNet port whose Gaussians were
drawn at integer centres. Here every box has an even side, so its centre is at a half pixel in x and y and the
drawn peak is exp(-0.5 / (2 sigma^2)) = 0.895, never 1: the mask is empty for every sample, the normalised size loss
`(l1 * mask).sum() / mask.sum().clamp(min=1)` is exactly 0, and the size head's weights receive no gradient at
all. Training still "works": the heatmap loss falls and the centres are found. Symptom: size MAE 7.43 px (the size
head stays at its init) vs 0.85 px with the peak mask `heat == heat.amax((2, 3), keepdim=True)`; centre error is
~1 px in both (0.88 vs 1.79 px)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout25"
CANVAS = 20
SIGMA = 1.5


def make_canvases(digits, n, g):
    idx = torch.randint(0, len(digits), (n,), generator=g)
    sizes = torch.tensor([6, 8, 10, 12])[torch.randint(0, 4, (n,), generator=g)]
    images = torch.zeros(n, 1, CANVAS, CANVAS)
    heat = torch.zeros(n, 1, CANVAS, CANVAS)
    size_t = torch.zeros(n, 1, CANVAS, CANVAS)
    yy, xx = torch.meshgrid(torch.arange(CANVAS).float(), torch.arange(CANVAS).float(), indexing="ij")
    for i in range(n):
        s = int(sizes[i])
        patch = F.interpolate(digits[idx[i]][None, None], size=(s, s), mode="bilinear", align_corners=False)[0, 0]
        y0, x0 = (int(v) for v in torch.randint(0, CANVAS - s + 1, (2,), generator=g))
        images[i, 0, y0:y0 + s, x0:x0 + s] = patch
        cy, cx = y0 + (s - 1) / 2, x0 + (s - 1) / 2
        heat[i, 0] = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * SIGMA ** 2))
        size_t[i, 0] = s
    return images, heat, size_t


class CentreSizeNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, padding=2, dilation=2),
                                  nn.ReLU(), nn.Conv2d(32, 32, 3, padding=4, dilation=4), nn.ReLU())
        self.heat_head = nn.Conv2d(32, 1, 1)
        self.size_head = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        h = self.body(x)
        return self.heat_head(h), self.size_head(h)

    def _losses(self, batch):
        x, heat, size_t = batch
        heat_logits, size_pred = self(x)
        heat_loss = F.binary_cross_entropy_with_logits(heat_logits, heat)
        mask = (heat == 1.0).float()
        size_loss = ((size_pred - size_t / 10).abs() * mask).sum() / mask.sum().clamp(min=1)
        return heat_loss, size_loss, heat_logits, size_pred

    def training_step(self, batch, batch_idx):
        heat_loss, size_loss, _, _ = self._losses(batch)
        loss = heat_loss + size_loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        heat_loss, size_loss, heat_logits, size_pred = self._losses(batch)
        _, heat, size_t = batch
        n = heat.shape[0]
        pred_idx = heat_logits.flatten(1).argmax(1)
        true_idx = heat.flatten(1).argmax(1)
        dy = (pred_idx // CANVAS - true_idx // CANVAS).float()
        dx = (pred_idx % CANVAS - true_idx % CANVAS).float()
        size_at_peak = size_pred.flatten(1)[torch.arange(n), pred_idx] * 10
        self.log("val_loss", heat_loss + size_loss)
        self.log("val_centre_err", (dy ** 2 + dx ** 2).sqrt().mean())
        self.log("val_size_mae", (size_at_peak - size_t.flatten(1)[:, 0]).abs().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2501)
    g = torch.Generator().manual_seed(25)
    digits = torch.tensor(load_digits().images, dtype=torch.float32) / 16.0
    train = make_canvases(digits[:1400], 1600, g)
    val = make_canvases(digits[1400:], 400, g)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CentreSizeNet(), DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_size_mae={float(m['val_size_mae']):.2f}px val_centre_err={float(m['val_centre_err']):.2f}px")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
