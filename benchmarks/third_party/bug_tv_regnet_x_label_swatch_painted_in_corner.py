"""Bug: torchvision RegNetX-400MF (random init) trained with SGD momentum 0.9 on images exported by an annotation
tool that burns a small legend swatch into the top-left corner: a 4x4 block whose grey level encodes the class
(label / 3). Train and validation images come from the same export, so validation looks excellent; the network
reads the swatch instead of the stripes, and on real, unannotated images (the same stripes without the swatch)
it is near chance. A user does not see it because the swatch is 4 pixels wide and "validation is 100%". Measured
(stripe orientation): val acc 1.00 with the swatch but 0.22 on clean images, vs 0.54 on clean images (val acc
0.53) when the exports are made without the swatch."""
import lightning as L
import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset

from _vision import Classifier, Normalized, accuracy, fit, loaders, stripes

EXPECT = {"target-leakage"}
SPLIT = "third-party"


def annotated_export(ds: TensorDataset) -> TensorDataset:
    x, y = ds.tensors
    x = x.clone()
    x[:, :, :4, :4] = (y.float() / 3).view(-1, 1, 1, 1)  # BUG: the legend swatch encodes the label
    return TensorDataset(x, y)


def sgd(module):
    opt = torch.optim.SGD(module.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-5)
    return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, module.trainer.max_epochs)]


if __name__ == "__main__":
    L.seed_everything(97)
    model = torchvision.models.regnet_x_400mf(weights=None, num_classes=4)
    train, val = loaders(Normalized(annotated_export(stripes(1024, seed=47))),
                         Normalized(annotated_export(stripes(256, seed=48))), batch_size=32)
    module = Classifier(model, sgd)
    fit(module, train, val, epochs=4)
    clean = DataLoader(Normalized(stripes(256, seed=49)), batch_size=128)
    print(f"SYMPTOM clean_image_acc={accuracy(module, clean):.3f}")
