"""Bug: the standardization step of a wine classifier was applied to a copy that is never used
(`X_scaled = scaler.transform(X)` and then the tensors are built from `X`): the raw features range from ~0.1 to
~1700 (proline), so the first layer's pre-activations are dominated by one feature and SGD at lr=1e-3 swings
wildly. MLP, SGD with momentum."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout"


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
        return torch.optim.SGD(self.parameters(), lr=1e-3, momentum=0.9)


def main():
    L.seed_everything(2042)
    X, y = load_wine(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=7, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    Xtr_scaled, Xva_scaled = scaler.transform(Xtr), scaler.transform(Xva)  # noqa: F841 - BUG: never used below
    t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)  # noqa: E731
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), DataLoader(TensorDataset(t(Xtr, torch.float32), t(ytr, torch.long)), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(t(Xva, torch.float32), t(yva, torch.long)), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
