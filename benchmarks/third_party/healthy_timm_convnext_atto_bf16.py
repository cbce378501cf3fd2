"""Healthy: timm ConvNeXt-Atto (``convnext_atto``, pretrained=False, stochastic depth 0.1 via drop_path_rate)
trained in bf16 mixed precision (``precision="bf16-mixed"``) with AdamW lr 2e-3, weight decay 0.05, gradient
norm clipping at 5, cosine per step without warm-up. Task: patch colour on 32x32 images."""
import lightning as L
import timm
import torch

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = None
SPLIT = "third-party"


def adamw_cosine(module):
    opt = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=module.trainer.estimated_stepping_batches)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(59)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=4, drop_path_rate=0.1)
    train, val = loaders(Normalized(colours(1024, seed=29), augment=hflip), Normalized(colours(256, seed=30)),
                         batch_size=32)
    fit(Classifier(model, adamw_cosine), train, val, epochs=4, precision="bf16-mixed", gradient_clip_val=5.0)
