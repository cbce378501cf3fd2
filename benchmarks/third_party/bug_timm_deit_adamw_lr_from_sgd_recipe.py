"""Bug: timm DeiT-Small (``deit_small_patch16_224`` re-shaped: img_size=32, patch_size=8, depth 4, embed 128,
4 heads, pretrained=False) trained with AdamW at lr 0.1, the learning rate of the SGD recipe the script started
from, with no warm-up. For Adam-type optimizers each step moves every weight by about lr, so the first steps
move the transformer weights (init std 0.02) by far more than their size, and training stays erratic for the
whole run. Nothing is NaN and the loss does go down, so it looks like a merely "hard" run. Measured (patch
colour): val acc 0.68, final train loss 0.85, with lr 0.1 vs val acc 1.00, train loss 0.01 with lr 1e-3."""
import lightning as L
import timm
import torch

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = {"update-ratio", "loss-trend"}
SPLIT = "third-party"

LR = 0.1  # BUG: an SGD learning rate given to AdamW


def adamw(module):
    opt = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=0.05)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, module.trainer.estimated_stepping_batches), "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(107)
    model = timm.create_model("deit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=4,
                              embed_dim=128, num_heads=4, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=54), augment=hflip), Normalized(colours(256, seed=55)),
                         batch_size=32)
    fit(Classifier(model, adamw), train, val, epochs=5)
