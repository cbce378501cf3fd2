"""Bug: timm ResNeSt-14d (split attention, pretrained=False) trained with SGD momentum 0.9, lr 0.02, on a data set
laid out like ``ImageFolder`` does it: samples sorted by class folder. The training DataLoader is built with
``shuffle=False`` (the default, copied from the validation loader), so nearly every batch holds a single class
and the classes come in blocks of ~8 batches; each block drags the classifier and the BatchNorm statistics to the
current class. Measured (patch colour): val acc 0.27 with the bug vs 1.00 (0.996) with ``shuffle=True``."""
import lightning as L
import timm
import torch
from torch.utils.data import DataLoader, Subset

from _vision import Classifier, Normalized, colours, fit

EXPECT = {"label-distribution"}
SPLIT = "third-party"


def image_folder_order(ds):
    """The order ``ImageFolder`` lists samples in: class 0's folder first, then class 1's, ..."""
    labels = ds.tensors[1]
    return Subset(ds, torch.argsort(labels, stable=True).tolist())


def sgd(module):
    return torch.optim.SGD(module.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)


if __name__ == "__main__":
    L.seed_everything(79)
    model = timm.create_model("resnest14d", pretrained=False, num_classes=4)
    train_set = Normalized(image_folder_order(colours(1024, seed=40)))
    val_set = Normalized(image_folder_order(colours(256, seed=41)))
    train = DataLoader(train_set, batch_size=32)  # BUG: shuffle=False
    val = DataLoader(val_set, batch_size=128)
    fit(Classifier(model, sgd), train, val, epochs=4)
