"""Bug: regression on sklearn's diabetes where the target scaler is applied to the training split only: the
validation DataLoader is built from the raw targets (25..346) while the model learns standardized ones (mean 0,
std 1). Training MSE falls normally, validation MSE is in the tens of thousands and does not improve. MLP, Adam."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout"


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(2121)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=8)
    xs, ys = StandardScaler().fit(Xtr), StandardScaler().fit(ytr.reshape(-1, 1))
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    train = TensorDataset(t(xs.transform(Xtr)), t(ys.transform(ytr.reshape(-1, 1)).ravel()))
    val = TensorDataset(t(xs.transform(Xva)), t(yva))  # BUG: meant ys.transform(yva.reshape(-1, 1)).ravel()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
