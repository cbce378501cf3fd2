"""Healthy: timm PoolFormer-S12 (``poolformer_s12``, pretrained=False; MetaFormer blocks with average pooling as
the token mixer, GroupNorm, layer scale 1e-5, stochastic depth 0.1) trained with AdamW (lr 1e-3, weight decay
0.05) and ``ReduceLROnPlateau`` on the validation loss (factor 0.5, patience 1), checked after each validation.
Task: patch colour on 32x32 images with horizontal flips."""
import lightning as L
import timm
import torch

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adamw_plateau(module):
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.05)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss", "interval": "epoch"}}


if __name__ == "__main__":
    L.seed_everything(109)
    model = timm.create_model("poolformer_s12", pretrained=False, num_classes=4, drop_path_rate=0.1)
    train, val = loaders(Normalized(colours(1024, seed=56), augment=hflip), Normalized(colours(256, seed=57)),
                         batch_size=32)
    fit(Classifier(model, adamw_plateau), train, val, epochs=5)
