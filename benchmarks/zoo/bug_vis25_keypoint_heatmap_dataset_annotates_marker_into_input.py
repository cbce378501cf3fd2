"""Bug: keypoint localisation as pixel classification. Each 20x20 scene holds one sklearn digit at a random offset
plus clutter (faint random strokes); the keypoint is the digit's ink centroid rounded to a pixel. A fully
convolutional net outputs one logit per pixel and is trained with cross-entropy over the 400 positions (a spatial
softmax, as in Mask R-CNN's keypoint head), decoded by argmax.

The Dataset has an `annotate` flag that draws the ground-truth keypoint as a small bright cross into the image; it
was added to eyeball samples in a notebook and defaults to True, and the DataModule never turns it off. Both train
and val images therefore carry a marker at the exact answer. The net learns to find the cross, which is easier than
finding the digit: val loss and val error look excellent, and the model is useless on real (unannotated) scenes.
Symptom: val error 0.01 px on the annotated val set but 1.11 px on the same val scenes without the marker; with
`annotate=False` the val error is 0.18 px, the same on clean scenes."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout25"
SIDE = 20


def render_scenes(digits, n, g):
    idx = torch.randint(0, len(digits), (n,), generator=g)
    offsets = torch.randint(0, SIDE - 8 + 1, (n, 2), generator=g)
    scenes = 0.3 * (torch.rand(n, 1, SIDE, SIDE, generator=g) > 0.93).float()
    keypoints = torch.zeros(n, 2, dtype=torch.long)
    coords = torch.arange(8).float()
    for i in range(n):
        d = digits[idx[i]]
        y0, x0 = int(offsets[i, 0]), int(offsets[i, 1])
        scenes[i, 0, y0:y0 + 8, x0:x0 + 8] = torch.maximum(scenes[i, 0, y0:y0 + 8, x0:x0 + 8], d)
        cy = (d.sum(1) * coords).sum() / d.sum()
        cx = (d.sum(0) * coords).sum() / d.sum()
        keypoints[i] = torch.stack([(y0 + cy).round(), (x0 + cx).round()]).long()
    return scenes, keypoints


class KeypointScenes(Dataset):
    def __init__(self, scenes, keypoints, annotate=True):
        self.scenes, self.keypoints, self.annotate = scenes, keypoints, annotate

    def __len__(self):
        return len(self.scenes)

    def __getitem__(self, i):
        img = self.scenes[i].clone()
        y, x = (int(v) for v in self.keypoints[i])
        if self.annotate:
            img[0, max(y - 1, 0):y + 2, x] = 1.0
            img[0, y, max(x - 1, 0):x + 2] = 1.0
        return img, y * SIDE + x


class SceneData(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(2505)
        digits = torch.tensor(load_digits().images, dtype=torch.float32) / 16.0
        self.train_set = KeypointScenes(*render_scenes(digits[:1400], 1400, g))
        self.val_set = KeypointScenes(*render_scenes(digits[1400:], 397, g))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=200)


class PixelKeypointNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Conv2d(32, 32, 3, padding=4, dilation=4), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Conv2d(32, 1, 1))

    def forward(self, x):
        return self.net(x).flatten(1)

    def training_step(self, batch, batch_idx):
        x, target = batch
        loss = F.cross_entropy(self(x), target)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, target = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, target))
        self.log("val_err_px", pixel_error(logits, target))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def pixel_error(logits, target):
    pred = logits.argmax(1)
    dy = (pred // SIDE - target // SIDE).float()
    dx = (pred % SIDE - target % SIDE).float()
    return (dy ** 2 + dx ** 2).sqrt().mean()


def main():
    L.seed_everything(2505)
    data, model = SceneData(), PixelKeypointNet()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=data)
    val = data.val_set
    model.eval()
    with torch.no_grad():
        clean_err = pixel_error(model(val.scenes), val.keypoints[:, 0] * SIDE + val.keypoints[:, 1])
    val_err = float(trainer.callback_metrics["val_err_px"])
    print(f"SYMPTOM val_err={val_err:.2f}px clean_scene_err={float(clean_err):.2f}px")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
