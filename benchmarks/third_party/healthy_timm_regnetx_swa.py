"""Healthy: timm RegNetX-200MF (``regnetx_002``, pretrained=False) trained with SGD momentum 0.9 (lr 0.02,
weight decay 5e-5) and Lightning's ``StochasticWeightAveraging`` callback: from 70% of the 10 epochs on the
rate is annealed to a constant SWA rate and the weights are averaged each epoch; BatchNorm statistics are
recomputed for the averaged weights at the end. Task: patch colour on 32x32 images."""
import lightning as L
import timm
import torch
from lightning.pytorch.callbacks import StochasticWeightAveraging

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def sgd(module):
    return torch.optim.SGD(module.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-5)


if __name__ == "__main__":
    L.seed_everything(61)
    model = timm.create_model("regnetx_002", pretrained=False, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=31), augment=hflip), Normalized(colours(256, seed=32)),
                         batch_size=32)
    fit(Classifier(model, sgd), train, val, epochs=10,
        callbacks=[StochasticWeightAveraging(swa_lrs=0.005, swa_epoch_start=0.7, annealing_epochs=2)])
