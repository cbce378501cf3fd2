"""Bug: image inpainting on sklearn digits upsampled to 16x16. A random rectangular hole is cut out of every image and
a small encoder-decoder CNN is trained to fill it (L1 loss on the hole pixels only, the mask is given as a second
input channel). In `_step` the user builds `masked = x * (1 - m)` but then calls `self(torch.cat([x, m], 1))` with
the original image - the variable names are one letter apart and the loss still goes down nicely. The network
reads the very pixels it must predict, so training and validation hole-L1 look excellent, but on real damaged
images (hole actually zeroed) it is useless.
Symptom: hole L1 on truly masked val images 0.36 (while the logged val hole L1 is 0.015) vs 0.095 with `masked`
passed in."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout16"


def load_images():
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return F.interpolate(x, size=16, mode="bilinear", align_corners=False)


def random_holes(n, g):
    m = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        h, w = torch.randint(4, 9, (2,), generator=g).tolist()
        r, c = torch.randint(0, 16 - h, (1,), generator=g).item(), torch.randint(0, 16 - w, (1,), generator=g).item()
        m[i, :, r:r + h, c:c + w] = 1.0
    return m


class Inpainter(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc = nn.Sequential(nn.Conv2d(2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                                 nn.ReLU(), nn.Conv2d(64, 64, 3, padding=2, dilation=2), nn.ReLU())
        self.dec = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(32, 1, 3, padding=1))

    def forward(self, inp):
        return torch.sigmoid(self.dec(self.enc(inp)))

    def _step(self, batch):
        x, m = batch
        masked = x * (1 - m)
        out = self(torch.cat([x, m], 1))
        hole_l1 = ((out - x).abs() * m).sum() / m.sum()
        valid_l1 = ((out - x).abs() * (1 - m)).sum() / (1 - m).sum()
        return hole_l1 + 0.1 * valid_l1, hole_l1

    def training_step(self, batch, batch_idx):
        loss, hole = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, hole = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_hole_l1", hole)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(1606)
    x = load_images()
    g = torch.Generator().manual_seed(16)
    perm = torch.randperm(len(x), generator=g)
    m = random_holes(len(x), g)
    tr, va = perm[:1450], perm[1450:]
    train_dl = DataLoader(TensorDataset(x[tr], m[tr]), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], m[va]), batch_size=128)
    model = Inpainter()
    trainer = L.Trainer(max_epochs=12, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="inpaint"), enable_progress_bar=False,
                        enable_checkpointing=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    with torch.no_grad():
        xv, mv = x[va], m[va]
        out = model(torch.cat([xv * (1 - mv), mv], 1))
        deployed = ((out - xv).abs() * mv).sum() / mv.sum()
    print(f"SYMPTOM logged val_hole_l1={trainer.callback_metrics['val_hole_l1']:.3f}")
    print(f"SYMPTOM hole_l1_on_truly_masked_val={deployed:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
