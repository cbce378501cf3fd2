"""Healthy: torchvision MobileNetV2 at width 0.5 (random init, inverted residuals, ReLU6) trained with the
super-convergence recipe: SGD with momentum and a OneCycle schedule (max lr 0.02, cycled momentum 0.85-0.95),
batch 64. Task: stripe orientation in 32x32 images, with random translations as augmentation."""
import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"


def one_cycle(module):
    opt = torch.optim.SGD(module.parameters(), lr=0.02, momentum=0.9, weight_decay=4e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.02, total_steps=module.trainer.estimated_stepping_batches,
                                                pct_start=0.25)
    return [opt], [{"scheduler": sched, "interval": "step"}]


if __name__ == "__main__":
    L.seed_everything(5)
    model = torchvision.models.mobilenet_v2(weights=None, width_mult=0.5, num_classes=4)
    train, val = loaders(Normalized(stripes(1536, seed=5), augment=shift), Normalized(stripes(256, seed=6)),
                         batch_size=64)
    fit(Classifier(model, one_cycle), train, val, epochs=6)
