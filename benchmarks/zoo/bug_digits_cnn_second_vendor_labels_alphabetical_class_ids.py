"""Digit classifier (small CNN on sklearn's 8x8 digits) trained on labels merged from two annotation vendors: vendor A
delivered integer class ids, vendor B re-annotated the same training pool as a second opinion and delivered class
*names* ("zero", "one", ...). Both exports are stacked into one training table (more labels, and annotator noise
averages out); validation uses vendor A's held-out images.

Bug: vendor B's names are turned into ids the way a label encoder does it, `classes = sorted(set(names))`, which
is alphabetical ("eight" = 0, "five" = 1, ... "zero" = 9), not the digit order vendor A used. Every training image
now appears twice with two different labels (only "six" happens to map to 6), so the network is asked to give
each image two classes at once; the training loss cannot go below about ln 2 and the predictions on validation
are a coin flip between the true digit and its alphabetical alias.
Measured symptom: val acc 0.38 (train loss 0.81) vs 0.99 (train loss 0.14) with the fix (`classes = DIGIT_NAMES`).
"""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout11"
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def vendor_exports(images, target, train_idx):
    """Vendor A: (index, int label) for everything; vendor B: (index, name) for the training pool, 3 % disagreeing."""
    rng = np.random.default_rng(5)
    a = [(i, int(target[i])) for i in range(len(target))]
    b = []
    for i in train_idx:
        lab = int(target[i]) if rng.random() > 0.03 else int(rng.integers(0, 10))
        b.append((int(i), DIGIT_NAMES[lab]))
    return a, b


class DigitCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(64 * 4, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(10)
    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    order = np.random.default_rng(0).permutation(len(d.target))
    train_idx, val_idx = order[:1400], order[1400:]
    a, b = vendor_exports(d.images, d.target, train_idx)
    a_lab = dict(a)

    names = [name for _, name in b]
    classes = sorted(set(names))
    to_id = {c: k for k, c in enumerate(classes)}

    rows = [(i, a_lab[i]) for i in train_idx] + [(i, to_id[name]) for i, name in b]
    tr_x = images[[i for i, _ in rows]]
    tr_y = torch.tensor([lab for _, lab in rows])
    va_x, va_y = images[val_idx], torch.tensor([a_lab[i] for i in val_idx])

    model = DigitCNN()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="two_vendors"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(tr_x, tr_y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(va_x, va_y), batch_size=400))
    model.eval()
    with torch.no_grad():
        acc = (model(va_x).argmax(1) == va_y).float().mean()
    print(f"SYMPTOM val_acc={acc:.3f} train_loss_epoch={trainer.callback_metrics['train_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
