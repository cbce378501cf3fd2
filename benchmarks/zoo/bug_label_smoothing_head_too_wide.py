"""Bug: a 3-class sub-task (sklearn digits 0, 1 and 2 only) trained with the 10-output head of the full digits
script (NUM_CLASSES was not updated) and `label_smoothing=0.2`: the smoothing mass is spread over 7 classes that
never occur, so the model is pushed to keep probability on them, and the initial loss is about ln 10 rather than
ln 3. MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss", "label-distribution"}
SPLIT = "heldout"


class DigitsNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.2)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits[:, :10], y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(1916)
    d = load_digits()
    x = (torch.tensor(d.data, dtype=torch.float32) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    keep = y < 3  # the sub-task: digits 0, 1, 2
    x, y = x[keep], y[keep]
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:420], perm[420:]
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsNet(), DataLoader(TensorDataset(x[tr], y[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
