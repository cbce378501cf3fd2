"""Bug: fiducial-marker localisation - a CNN regresses the (x, y) centre of a small bright cross on seeded
synthetic 20x20 images with background clutter (random dim strokes, noise). Targets are stored COCO-style with a
keypoint axis, shape (N, K=1, 2), normalised to [-1, 1]; the head outputs (B, 2). The loss is written by hand as the
mean squared keypoint distance, `((pred - kp) ** 2).sum(-1).mean()`, which broadcasts (B, 2) against (B, 1, 2) to
(B, B, 2) without any warning: every prediction is pulled towards every target of the batch, so the model learns the
batch-mean location. Symptom: val mean error 5.4 px vs 0.31 px with `kp.squeeze(1)` (or a (B, 1, 2) head)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout18"
S = 20


def make_markers(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    cx = 3 + (S - 6) * torch.rand(n, generator=g)
    cy = 3 + (S - 6) * torch.rand(n, generator=g)
    dx, dy = (xx - cx[:, None, None]).abs(), (yy - cy[:, None, None]).abs()
    cross = (((dx < 0.8) & (dy < 2.5)) | ((dy < 0.8) & (dx < 2.5))).float()
    img = cross + 0.2 * torch.randn(n, S, S, generator=g)
    # clutter: a dim horizontal and vertical stroke at random rows/columns
    rows = torch.randint(0, S, (n,), generator=g)
    cols = torch.randint(0, S, (n,), generator=g)
    img[torch.arange(n), rows, :] += 0.4
    img[torch.arange(n), :, cols] += 0.4
    kp = torch.stack([cx, cy], 1) / (S - 1) * 2 - 1
    return img.unsqueeze(1), kp.unsqueeze(1)


class MarkerNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * 25, 128), nn.ReLU(), nn.Linear(128, 2), nn.Tanh())

    def forward(self, x):
        return self.head(self.features(x))

    def keypoint_loss(self, pred, kp):
        return ((pred - kp) ** 2).sum(-1).mean()

    def training_step(self, batch, batch_idx):
        x, kp = batch
        loss = self.keypoint_loss(self(x), kp)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, kp = batch
        pred = self(x)
        self.log("val_loss", self.keypoint_loss(pred, kp))
        err_px = ((pred - kp[:, 0]) * (S - 1) / 2).norm(dim=-1).mean()
        self.log("val_err_px", err_px, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2020)
    g = torch.Generator().manual_seed(7)
    x, kp = make_markers(2400, g)
    train, val = TensorDataset(x[:2000], kp[:2000]), TensorDataset(x[2000:], kp[2000:])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(MarkerNet(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=200))
    print(f"SYMPTOM val_err_px={trainer.callback_metrics['val_err_px'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
