"""Healthy: timm DeiT-Tiny (``deit_tiny_patch16_224`` re-shaped: img_size=32, patch_size=8, depth 4,
pretrained=False) trained with timm's own optimizer factory, ``create_optimizer_v2("adamw", lr=2e-3,
weight_decay=0.05, layer_decay=0.75)`` (layer-wise lr decay from the head down, no decay on norms/biases/tokens),
and ``create_scheduler_v2`` cosine with one warm-up epoch, stepped per epoch. Task: stripe orientation."""
import lightning as L
import timm
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from _vision import Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"


class TimmSchedClassifier(Classifier):
    def lr_scheduler_step(self, scheduler, metric):
        scheduler.step(epoch=self.current_epoch + 1)


def timm_recipe(module):
    opt = create_optimizer_v2(module.model, "adamw", lr=2e-3, weight_decay=0.05, layer_decay=0.75)
    sched, _ = create_scheduler_v2(opt, sched="cosine", num_epochs=module.trainer.max_epochs, warmup_epochs=1,
                                   warmup_lr=1e-4, min_lr=1e-5)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


if __name__ == "__main__":
    L.seed_everything(53)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=4,
                              num_classes=4)
    train, val = loaders(Normalized(stripes(1024, seed=27), augment=shift), Normalized(stripes(256, seed=28)),
                         batch_size=32)
    fit(TimmSchedClassifier(model, timm_recipe), train, val, epochs=6)
