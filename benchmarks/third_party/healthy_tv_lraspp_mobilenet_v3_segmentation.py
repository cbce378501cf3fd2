"""Healthy: torchvision LR-ASPP with a MobileNetV3-Large backbone (``lraspp_mobilenet_v3_large``, weights=None,
weights_backbone=None, dilated last stage) trained for semantic segmentation of red and blue objects (squares or
disks) on 32x32 images: per-pixel cross-entropy on the ``["out"]`` logits, Adam lr 1e-3 with polynomial decay
(power 0.9) per step, the DeepLab schedule, batch 4 for 600 steps (the backbone's BatchNorm momentum is 0.01:
with 300 steps its running variances still remember their init and eval predicts all background). Reports pixel
accuracy and mean IoU."""
import lightning as L
import torch
import torch.nn.functional as F
import torchvision

from _vision import Normalized, fit, loaders, shapes

EXPECT = None
SPLIT = "third-party"


class Segmenter(L.LightningModule):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        return self.model(x)["out"]

    def training_step(self, batch, batch_idx):
        x, mask = batch
        loss = F.cross_entropy(self(x), mask)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        pred = logits.argmax(1)
        ious = [((pred == c) & (mask == c)).sum() / ((pred == c) | (mask == c)).sum().clamp(min=1)
                for c in range(self.num_classes)]
        self.log("val_loss", F.cross_entropy(logits, mask))
        self.log("val_pixel_acc", (pred == mask).float().mean())
        self.log("val_miou", torch.stack(ious).mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        poly = torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=self.trainer.estimated_stepping_batches,
                                                     power=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": poly, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(41)
    train, val = loaders(Normalized(shapes(800, seed=21, size=32)), Normalized(shapes(160, seed=22, size=32)),
                         batch_size=4)
    fit(Segmenter(), train, val, epochs=3)
