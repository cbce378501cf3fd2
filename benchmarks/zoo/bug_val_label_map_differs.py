"""Bug: string labels encoded separately for train and validation: the training split maps class names to ids in
order of first appearance in the (shuffled) training table, the validation split uses `sorted()` names. The two
maps disagree, so the model learns well on train while validation accuracy sits near or below chance and the
validation loss rises. Wine dataset with class names, MLP, Adam."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout"
NAMES = np.array(["barolo", "grignolino", "barbera"])


class WineNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))

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
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(1513)
    X, y = load_wine(return_X_y=True)
    names = NAMES[y]
    perm = np.random.default_rng(0).permutation(len(y))
    tr, va = perm[:140], perm[140:]
    mean, std = X[tr].mean(0), X[tr].std(0)
    X = (X - mean) / std
    train_map = {n: i for i, n in enumerate(dict.fromkeys(names[tr]))}  # order of first appearance
    val_map = {n: i for i, n in enumerate(sorted(set(names[va])))}  # BUG: a different encoding than train's
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(t(X[tr]), torch.tensor([train_map[n] for n in names[tr]]))
    val = TensorDataset(t(X[va]), torch.tensor([val_map[n] for n in names[va]]))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
