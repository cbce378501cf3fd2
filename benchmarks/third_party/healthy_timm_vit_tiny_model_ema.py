"""Healthy: timm ViT-Tiny (``vit_tiny_patch16_224`` re-shaped at creation: img_size=32, patch_size=8, depth 4,
pretrained=False) trained with AdamW (lr 1e-3, weight decay 0.05), timm's cosine scheduler with warm-up
(``create_scheduler_v2``, stepped per optimizer step through ``lr_scheduler_step``) and an exponential moving
average of the weights (timm ``ModelEmaV3``, decay 0.99 with warm-up) that is the model validated. Task: colour."""
import lightning as L
import timm
import torch
import torch.nn.functional as F
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3

from _vision import Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


class EmaClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=4,
                                       num_classes=4)
        self.ema = ModelEmaV3(self.model, decay=0.99, use_warmup=True)

    def forward(self, x):
        return self.ema.module(x) if not self.training else self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update(self.model, step=self.global_step)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.ema.module(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.05)
        epochs = self.trainer.max_epochs
        sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=epochs, warmup_epochs=1, warmup_lr=1e-5,
                                       min_lr=1e-5, step_on_epochs=False,
                                       updates_per_epoch=self.trainer.estimated_stepping_batches // epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def lr_scheduler_step(self, scheduler, metric):
        scheduler.step_update(num_updates=self.global_step)


if __name__ == "__main__":
    L.seed_everything(47)
    train, val = loaders(Normalized(colours(1024, seed=25), augment=hflip), Normalized(colours(256, seed=26)),
                         batch_size=32)
    fit(EmaClassifier(), train, val, epochs=5)
