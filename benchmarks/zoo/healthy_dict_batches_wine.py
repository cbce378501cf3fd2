"""Healthy: a Dataset that returns dicts ({"features", "label", "id"}) as many real pipelines do, on sklearn's
wine set; the LightningModule reads batch["features"] and batch["label"]. Adam, a few dozen epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None


class WineDataset(Dataset):
    def __init__(self, X, y, mean, std):
        self.X = torch.tensor((X - mean) / std, dtype=torch.float32)
        self.y = torch.tensor(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"features": self.X[i], "label": self.y[i], "id": i}


class WineModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(13, 24), nn.Tanh(), nn.Linear(24, 3))

    def forward(self, features):
        return self.mlp(features)

    def _step(self, batch, stage):
        logits = self(batch["features"])
        loss = F.cross_entropy(logits, batch["label"])
        self.log(f"{stage}_loss", loss, batch_size=len(batch["label"]))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=5e-3)


def main():
    L.seed_everything(77)
    X, y = load_wine(return_X_y=True)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).numpy()
    tr, va = perm[:140], perm[140:]
    mean, std = X[tr].mean(0), X[tr].std(0)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineModel(), DataLoader(WineDataset(X[tr], y[tr], mean, std), batch_size=20, shuffle=True),
                DataLoader(WineDataset(X[va], y[va], mean, std), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
