"""Healthy: timm MLP-Mixer (``timm.models.MlpMixer``, the class behind ``mixer_s16_224``, built for 32x32 images:
patch 4, 4 blocks, embed 128, random init; token- and channel-mixing MLPs with GELU and LayerNorm) trained with
AdamW (lr 1e-3, weight decay 0.05), label smoothing 0.1, linear warm-up for 20 steps then cosine. Task: which
quadrant of the image is brighter (position matters, so no flips)."""
import math

import lightning as L
import timm
import torch

from _vision import Classifier, Normalized, fit, loaders, quadrants

EXPECT = None
SPLIT = "third-party"


def adamw(module):
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.05)
    total = module.trainer.estimated_stepping_batches
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / total)))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(67)
    model = timm.models.MlpMixer(img_size=32, patch_size=4, num_blocks=4, embed_dim=128, num_classes=4)
    train, val = loaders(Normalized(quadrants(1024, seed=33)), Normalized(quadrants(256, seed=34)), batch_size=32)
    fit(Classifier(model, adamw, label_smoothing=0.1), train, val, epochs=5)
