"""Healthy: torchvision RegNetY-400MF (random init; grouped convs with squeeze-excitation) trained with SGD
momentum 0.9, weight decay 5e-5, a step-wise linear warm-up then cosine, micro-batches of 16 with gradient
accumulation over 2 (effective batch 32). Task: patch colour, 48x48 images, random translations."""
import lightning as L
import torch
import torchvision

from _vision import Classifier, Normalized, colours, fit, loaders, shift

EXPECT = None
SPLIT = "third-party"


def sgd_warmup_cosine(module):
    opt = torch.optim.SGD(module.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-5)
    total = module.trainer.estimated_stepping_batches
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 10)], milestones=[10])
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(17)
    model = torchvision.models.regnet_y_400mf(weights=None, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=11, size=48), augment=shift),
                         Normalized(colours(256, seed=12, size=48)), batch_size=16)
    fit(Classifier(model, sgd_warmup_cosine), train, val, epochs=4, accumulate_grad_batches=2)
