"""Healthy: torchvision ResNet-18 (random init) trained from scratch the classic ImageNet way, scaled down: SGD with
Nesterov momentum 0.9 and weight decay 5e-4 (not on BatchNorm and biases), cosine annealing per step, label
smoothing 0.1 and random translations. Task: the orientation of noisy stripes in a 32x32 image."""
import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"

EPOCHS = 4


def sgd(module):
    decay = [p for n, p in module.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in module.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.05, momentum=0.9, nesterov=True)
    steps = module.trainer.estimated_stepping_batches
    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
                                               "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(11)
    model = torchvision.models.resnet18(weights=None, num_classes=4)
    train, val = loaders(Normalized(stripes(1024, seed=1), augment=shift), Normalized(stripes(256, seed=2)),
                         batch_size=32)
    fit(Classifier(model, sgd, label_smoothing=0.1), train, val, EPOCHS)
