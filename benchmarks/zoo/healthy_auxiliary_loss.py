"""Healthy: a digits CNN with an auxiliary classifier on the intermediate features (GoogLeNet-style deep
supervision); total loss = main + 0.3 * auxiliary, both cross-entropy on the same labels."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class DeeplySupervised(L.LightningModule):
    def __init__(self, aux_weight=0.3):
        super().__init__()
        self.save_hyperparameters()
        self.block1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU())
        self.aux_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
        self.main_head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 10))

    def forward(self, x):
        h1 = self.block1(x)
        return self.main_head(self.block2(h1)), self.aux_head(h1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        main, aux = self(x)
        main_loss, aux_loss = F.cross_entropy(main, y), F.cross_entropy(aux, y)
        loss = main_loss + self.hparams.aux_weight * aux_loss
        self.log_dict({"train/main": main_loss, "train/aux": aux_loss, "train/total": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        main, _ = self(x)
        self.log("val/acc", (main.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(15)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DeeplySupervised(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
