"""Healthy: torchvision MobileNetV3-Small (random init; its BatchNorm layers use momentum 0.01, hardswish, SE
blocks, dropout 0.2 before the classifier) in channels_last memory format, trained with AdamW (batch 16, lr 2e-3,
weight decay 0.05), a linear warm-up over the first 10% of steps then cosine decay. Task: the colour of a patch.
(With batch 32 and 240 steps its momentum-0.01 running statistics lag and val acc stays near chance: batch 16.)"""
import math

import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adamw_warmup_cosine(module):
    opt = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=0.05)
    total = module.trainer.estimated_stepping_batches
    warm = max(1, total // 10)

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor),
                                               "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(21)
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=4)
    train, val = loaders(Normalized(colours(1536, seed=3), augment=hflip), Normalized(colours(256, seed=4)),
                         batch_size=16)
    fit(Classifier(model, adamw_warmup_cosine, channels_last=True), train, val, epochs=6)
