"""Healthy: torchvision ConvNeXt built through its constructor with a small block setting (two stages, widths
32/64, depthwise 7x7 convs, LayerNorm, layer scale 1e-6, stochastic depth 0.1), trained like ConvNeXt is: AdamW
lr 1e-3, weight decay 0.05 off norms and biases, warm-up then cosine (SequentialLR). Task: patch colour."""
from functools import partial

import lightning as L
import torch
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adamw(module):
    decay = [p for n, p in module.named_parameters() if p.ndim > 1]
    rest = [p for n, p in module.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}], lr=1e-3)
    total = module.trainer.estimated_stepping_batches
    warm = total // 8
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warm),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm)], milestones=[warm])
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(13)
    blocks = [CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)]
    model = ConvNeXt(blocks, stochastic_depth_prob=0.1, layer_scale=1e-6, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=9), augment=hflip), Normalized(colours(256, seed=10)),
                         batch_size=32)
    fit(Classifier(model, adamw), train, val, epochs=5)
