"""Healthy: torchvision EfficientNet-B0 (random init; MBConv blocks with SiLU and squeeze-excitation, stochastic
depth 0.2, dropout 0.2) trained with the EfficientNet-style optimizer, RMSprop (alpha 0.9, eps 1e-3, momentum
0.9, lr 1e-3) with exponential lr decay per epoch and gradient-norm clipping at 1.0. Task: patch colour, 32x32."""
import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def rmsprop(module):
    opt = torch.optim.RMSprop(module.parameters(), lr=1e-3, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=1e-5)
    return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)]


if __name__ == "__main__":
    L.seed_everything(8)
    model = torchvision.models.efficientnet_b0(weights=None, num_classes=4, stochastic_depth_prob=0.2)
    train, val = loaders(Normalized(colours(1024, seed=7), augment=hflip), Normalized(colours(256, seed=8)),
                         batch_size=32)
    fit(Classifier(model, rmsprop), train, val, epochs=4, gradient_clip_val=1.0)
