"""Healthy: Lightning's StochasticWeightAveraging callback (swa_lrs=0.01 from 60 % of the epochs, cosine
annealing into the SWA learning rate) on top of SGD with momentum; MLP on sklearn digits."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
EPOCHS = 8


class DigitsNet(L.LightningModule):
    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

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
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def main():
    L.seed_everything(1604)
    d = load_digits()
    x = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=32, shuffle=True)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=[*lightning_sanity.default_callbacks(), L.pytorch.callbacks.StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=0.6, annealing_epochs=2)])
    trainer.fit(DigitsNet(len(train)), train, DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
