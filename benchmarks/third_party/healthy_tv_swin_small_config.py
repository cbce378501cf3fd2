"""Healthy: torchvision SwinTransformer built through its constructor for 32x32 images (patch 2, embed 32, two
stages of depth 2 with 2 and 4 heads, window 4, shifted windows, patch merging, stochastic depth 0.1) trained
with AdamW (lr 1e-3, weight decay 0.05), cosine annealing per step after a short warm-up. Task: patch colour."""
import lightning as L
import torch
from torchvision.models import SwinTransformer

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adamw(module):
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.05)
    total = module.trainer.estimated_stepping_batches
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=15),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 15, eta_min=1e-5)], milestones=[15])
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(37)
    model = SwinTransformer(patch_size=[2, 2], embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                            stochastic_depth_prob=0.1, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=19), augment=hflip), Normalized(colours(256, seed=20)),
                         batch_size=32)
    fit(Classifier(model, adamw), train, val, epochs=4)
