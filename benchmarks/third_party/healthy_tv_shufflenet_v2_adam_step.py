"""Healthy: torchvision ShuffleNetV2 x0.5 (random init; channel split and shuffle, depthwise convs) trained with
plain Adam (lr 3e-3) and a StepLR that halves the rate every 2 epochs, weight decay 1e-4. Task: patch colour on
a grey background, 40x40 images, horizontal flips."""
import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adam_step(module):
    opt = torch.optim.Adam(module.parameters(), lr=3e-3, weight_decay=1e-4)
    return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)}


if __name__ == "__main__":
    L.seed_everything(23)
    model = torchvision.models.shufflenet_v2_x0_5(weights=None, num_classes=4)
    train, val = loaders(Normalized(colours(1280, seed=13, size=40), augment=hflip),
                         Normalized(colours(256, seed=14, size=40)), batch_size=32)
    fit(Classifier(model, adam_step), train, val, epochs=6)
