"""Healthy: a small torchvision DenseNet built through its constructor (growth rate 12, three dense blocks of 4
layers, bottleneck 4, 24 stem features: the DenseNet-BC recipe for small images) trained with SGD Nesterov
momentum, weight decay 1e-4 and a MultiStepLR dividing the rate by 10 at 50% and 75% of the epochs. Task: stripes."""
import lightning as L
import torch
from torchvision.models import DenseNet

from _vision import Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"

EPOCHS = 6


def sgd_multistep(module):
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[EPOCHS // 2, 3 * EPOCHS // 4], gamma=0.1)]


if __name__ == "__main__":
    L.seed_everything(29)
    model = DenseNet(growth_rate=12, block_config=(4, 4, 4), num_init_features=24, bn_size=4, num_classes=4)
    train, val = loaders(Normalized(stripes(1536, seed=15), augment=shift), Normalized(stripes(256, seed=16)),
                         batch_size=64)
    fit(Classifier(model, sgd_multistep), train, val, epochs=EPOCHS)
