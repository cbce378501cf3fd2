"""Bug: timm ResNet-18-D (``resnet18d``: deep stem, avg-pool downsampling; pretrained=False) wrapped as ``nn.Sequential(model, nn.Softmax(dim=1))`` so that
the exported model returns probabilities, and trained with ``nn.CrossEntropyLoss`` on that output, which applies
log-softmax again: the loss sees probabilities in [0, 1] as logits, its values are squeezed between ~0.74 and
ln 4, and its gradients are tiny. Nothing fails; it learns slowly. Adam lr 1e-3, patch colour task. Measured:
val acc 0.45 with the bug vs 0.95 without the extra softmax."""
import lightning as L
import timm
import torch
from torch import nn

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = {"loss-input"}
SPLIT = "third-party"


def adam(module):
    return torch.optim.Adam(module.parameters(), lr=1e-3)


if __name__ == "__main__":
    L.seed_everything(103)
    backbone = timm.create_model("resnet18d", pretrained=False, num_classes=4)
    model = nn.Sequential(backbone, nn.Softmax(dim=1))  # BUG: probabilities into CrossEntropyLoss
    train, val = loaders(Normalized(colours(768, seed=52), augment=hflip), Normalized(colours(256, seed=53)),
                         batch_size=32)
    fit(Classifier(model, adam), train, val, epochs=3)
