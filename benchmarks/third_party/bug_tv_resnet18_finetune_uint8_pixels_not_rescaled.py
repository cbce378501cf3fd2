"""Bug: fine-tuning a torchvision ResNet-18 whose backbone was "pretrained" here (plain PyTorch loop on stripe
orientation, images as ``ToTensor`` gives them: [0, 1], then ImageNet ``Normalize``), saved and reloaded. The
backbone is frozen with BatchNorm in eval mode and a new ``fc`` trains with Adam on a new stripes data set. The
fine-tuning data set keeps its images as decoded uint8 HxWxC arrays and converts them with
``torch.from_numpy(a).permute(2, 0, 1).float()`` before ``Normalize``: the ``/ 255`` that ``ToTensor`` did is
missing, so the frozen backbone sees inputs ~255x larger than in pretraining, and its frozen BatchNorm layers
cannot absorb the scale. Nothing fails; the head just learns from distorted features. A user writes it when
replacing ``ToTensor`` (PIL only) with a from-numpy conversion for speed. Measured: val acc 0.25 (val loss 99)
with the bug vs 1.00 (val loss 0.11) with ``/ 255``."""
import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from _vision import IMAGENET_MEAN, IMAGENET_STD, Classifier, Normalized, fit, loaders, shift, stripes

EXPECT = {"input-scale"}
SPLIT = "third-party"


class Uint8Images(Dataset):
    """Images kept as decoded uint8 HxWxC arrays, converted to tensors on access."""

    def __init__(self, ds) -> None:
        x, self.y = ds.tensors
        self.arrays = [a.numpy() for a in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)]
        self.normalize = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        img = torch.from_numpy(self.arrays[i]).permute(2, 0, 1).float()  # BUG: no / 255
        return self.normalize(img), self.y[i]


def pretrain(path: str) -> None:
    net = torchvision.models.resnet18(weights=None, num_classes=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        for x, y in DataLoader(Normalized(stripes(768, seed=44), augment=shift), batch_size=32, shuffle=True):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    torch.save(net.state_dict(), path)


class FineTuner(Classifier):
    def on_train_epoch_start(self):
        for name, child in self.model.named_children():
            if name != "fc":
                child.eval()  # frozen backbone keeps its pretrained BatchNorm statistics


def adam_head(module):
    return torch.optim.Adam(module.model.fc.parameters(), lr=1e-3)


if __name__ == "__main__":
    L.seed_everything(89)
    ckpt = os.path.join(tempfile.mkdtemp(), "resnet18_pretrained.pt")
    pretrain(ckpt)
    model = torchvision.models.resnet18(weights=None, num_classes=4)
    model.load_state_dict(torch.load(ckpt))
    model.requires_grad_(False)
    model.fc = nn.Linear(512, 4)
    train, val = loaders(Uint8Images(stripes(1024, seed=45, noise=0.4)), Uint8Images(stripes(256, seed=46, noise=0.4)),
                         batch_size=32)
    fit(FineTuner(model, adam_head), train, val, epochs=3)
