"""Bug: a two-head network on 16x16 canvases with one scikit-learn digit pasted at a random offset: a shared conv
trunk feeds a classification head (global pooling, 10 classes) and a one-channel heatmap head whose peak is decoded
into the digit's centre (x, y). Loss = cross-entropy + L1 on the centre in canvas units / 16; AdamW, cosine decay.

The centre is decoded with a hard `argmax` over the flattened heatmap (the inference decoder, reused in the loss)
instead of a soft-argmax (softmax-weighted mean of the pixel coordinates). `argmax` returns integer indices, so the
L1 term is a constant with respect to the weights: it is logged, it is added to the loss, and the total still falls
because the classification term falls, but the heatmap head receives no gradient at all and stays at its
initialisation (its argmax only lands near the digit because the trained trunk lights up there). Symptom: mean
val centre error 2.33 pixels with val accuracy 0.919, vs 0.77 pixels (accuracy 0.859) with a soft-argmax decoder
in the loss."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout21"
CANVAS = 16


def make_canvases(images, labels, g):
    n = len(images)
    off = torch.randint(0, CANVAS - 8 + 1, (n, 2), generator=g)
    canvas = 0.05 * torch.randn(n, 1, CANVAS, CANVAS, generator=g)
    for i in range(n):
        ox, oy = off[i].tolist()
        canvas[i, 0, oy:oy + 8, ox:ox + 8] += images[i]
    centre = off.float() + 3.5
    return canvas, labels, centre


class LocateAndClassify(L.LightningModule):
    def __init__(self, lr=2e-3, loc_weight=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.BatchNorm2d(32), nn.ReLU())
        self.cls_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        self.heatmap_head = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        feats = self.trunk(x)
        return self.cls_head(feats), self.heatmap_head(feats).flatten(1)

    @staticmethod
    def decode_centre(heatmap):
        idx = heatmap.argmax(1)
        return torch.stack([idx % CANVAS, idx // CANVAS], 1).float()

    def _losses(self, batch):
        x, y, centre = batch
        logits, heatmap = self(x)
        ce = F.cross_entropy(logits, y)
        loc = F.l1_loss(self.decode_centre(heatmap) / CANVAS, centre / CANVAS)
        return logits, heatmap, ce, loc

    def training_step(self, batch, batch_idx):
        _, _, ce, loc = self._losses(batch)
        loss = ce + self.hparams.loc_weight * loc
        self.log_dict({"train_loss": loss, "train_loc": loc}, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits, heatmap, ce, loc = self._losses(batch)
        err = (self.decode_centre(heatmap) - batch[2]).norm(dim=1).mean()
        self.log_dict({"val_loss": ce + self.hparams.loc_weight * loc, "val_centre_err_px": err,
                       "val_acc": (logits.argmax(1) == batch[1]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2105)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(5)
    perm = torch.randperm(len(labels), generator=g)
    train = make_canvases(images[perm[:1400]], labels[perm[:1400]], g)
    val = make_canvases(images[perm[1400:]], labels[perm[1400:]], g)
    model = LocateAndClassify()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=400))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_centre_err_px={float(m['val_centre_err_px']):.2f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
