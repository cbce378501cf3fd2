"""Bug: timm ResNet-18-D (``resnet18d``: deep stem, avg-pool downsampling; pretrained=False) wrapped as
``nn.Sequential(model, nn.Softmax(dim=1))`` so that the exported model returns probabilities, and trained with
cross-entropy on that output, which applies log-softmax again: the loss sees probabilities in [0, 1] as logits,
it can never go below ln(1 + 3/e) = 0.74 and its gradients shrink as the model gets it right. Nothing fails.
Adam lr 1e-3, patch colour task. Measured: final train loss 0.77 vs 0.02 without the extra softmax, val loss
0.77 vs 0.04; val acc does not show it on this easy task (0.98 vs 0.98)."""
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
    train, val = loaders(Normalized(colours(512, seed=52), augment=hflip), Normalized(colours(256, seed=53)),
                         batch_size=32)
    fit(Classifier(model, adam), train, val, epochs=3)
