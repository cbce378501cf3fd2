"""Healthy: timm ResNet-18 (``timm.create_model("resnet18", pretrained=False)``) trained with mixup and cutmix
written by hand in the training step (Beta(0.2) / Beta(1.0), one of the two per batch, soft-target cross-entropy
on the mixed one-hot labels), SGD momentum 0.9 lr 0.05, weight decay 1e-4, cosine per epoch. Task: stripes."""
import lightning as L
import timm
import torch
import torch.nn.functional as F

from _vision import Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = None
SPLIT = "third-party"


class MixClassifier(Classifier):
    def training_step(self, batch, batch_idx):
        x, y = batch
        target = F.one_hot(y, 4).float()
        perm = torch.randperm(x.shape[0])
        if torch.rand(()) < 0.5:  # mixup
            lam = float(torch.distributions.Beta(0.2, 0.2).sample())
            x = lam * x + (1 - lam) * x[perm]
        else:  # cutmix: paste a box from the shuffled batch, lambda = kept area
            lam = float(torch.distributions.Beta(1.0, 1.0).sample())
            h, w = x.shape[-2:]
            bh, bw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
            top, left = torch.randint(0, h - bh + 1, ()).item(), torch.randint(0, w - bw + 1, ()).item()
            x = x.clone()
            x[..., top:top + bh, left:left + bw] = x[perm][..., top:top + bh, left:left + bw]
            lam = 1 - bh * bw / (h * w)
        target = lam * target + (1 - lam) * target[perm]
        loss = torch.sum(-target * F.log_softmax(self(x), dim=-1), dim=-1).mean()
        self.log("train_loss", loss)
        return loss


def sgd(module):
    opt = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=module.trainer.max_epochs)]


if __name__ == "__main__":
    L.seed_everything(43)
    model = timm.create_model("resnet18", pretrained=False, num_classes=4)
    train, val = loaders(Normalized(stripes(1024, seed=23), augment=shift), Normalized(stripes(256, seed=24)),
                         batch_size=32)
    fit(MixClassifier(model, sgd), train, val, epochs=5)
