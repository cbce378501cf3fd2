"""Bug: 8x8 digit images converted to 0..255 "uint8-style" pixels and fed to a CNN as float without dividing by
255 (the usual forgotten ToTensor/normalisation step). SGD with momentum."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"input-scale"}


class DigitImages(Dataset):
    def __init__(self, images, labels):
        self.images = (images * 255.0 / 16.0).round().to(torch.uint8)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i].float().unsqueeze(0), self.labels[i]  # BUG: no / 255


class CNN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(32 * 16, 10)

    def forward(self, x):
        return self.fc(self.conv(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3, momentum=0.9)


def main():
    L.seed_everything(0)
    d = load_digits()
    images, labels = torch.tensor(d.images, dtype=torch.float32), torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CNN(), DataLoader(DigitImages(images[:1500], labels[:1500]), batch_size=64, shuffle=True),
                DataLoader(DigitImages(images[1500:], labels[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
