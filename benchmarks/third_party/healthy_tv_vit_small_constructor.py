"""Healthy: torchvision VisionTransformer built through its constructor for 32x32 images (patch 8, 4 layers, 4
heads, hidden 96, MLP 192, class token, learned position embeddings) trained the ViT way: AdamW (lr 1e-3, betas
0.9/0.999, weight decay 0.05), 10% linear warm-up then cosine, label smoothing 0.1, gradient clipping at 1.
Task: the colour of a patch of random size and place, horizontal flips."""
import math

import lightning as L
import torch
from torchvision.models import VisionTransformer

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def vit_recipe(module):
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.05)
    total = module.trainer.estimated_stepping_batches
    warm = total // 10
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(31)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=4, num_heads=4, hidden_dim=96, mlp_dim=192,
                              num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=17), augment=hflip), Normalized(colours(256, seed=18)),
                         batch_size=32)
    fit(Classifier(model, vit_recipe, label_smoothing=0.1), train, val, epochs=8, gradient_clip_val=1.0)
