"""Bug: a VGG-style plain CNN ported without its BatchNorm layers but with the N(0, 0.01) initialisation of the
original Caffe-era recipe for every conv layer: eight 3x3 convs with std 0.01 shrink the signal (and the gradient)
by about 10x per layer, so the first layers get almost no gradient and the network sits at chance for many epochs.
The rest as in the healthy twin (BatchNorm, Kaiming init): on sklearn's 8x8 digits, SGD with momentum and
Lightning's StochasticWeightAveraging over the last epochs. Own metric: val acc 0.99 (chance 0.10). Measured with
the bug: val acc 0.09 after 8 epochs vs 0.99 fixed."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"vanishing-gradient"}
SPLIT = "heldout3"
CFG = [16, 16, "M", 32, 32, 32, "M", 64, 64, 64]


class PlainVGG(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        layers, cin = [], 1
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # BUG: the no-BatchNorm port keeps the tiny Gaussian init, far below He's sqrt(2 / fan_in)
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)


def main():
    L.seed_everything(9)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.45
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(9))
    tr, va = perm[:1400], perm[1400:]
    model = PlainVGG()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks()
                        + [StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=0.75)])
    trainer.fit(model, DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
