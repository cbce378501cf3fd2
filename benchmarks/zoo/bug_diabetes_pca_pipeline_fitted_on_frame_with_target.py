"""Bug (target leakage through a preprocessing pipeline): the diabetes data is kept as one table whose last column is
the target, named "target". The feature list is built as `[c for c in COLUMNS if c != "progression"]`, an old name
of the target column, so the target stays among the inputs. The features then go through a
`StandardScaler -> PCA(whiten)` pipeline (fitted on the training rows only, as it should be), so the target is not a
column any more but is mixed into the principal components, and validation rows carry it too. An MLP regresses the
standardised target. Symptom: val R^2 0.71 (RMSE 39) where the fixed feature list (`c != "target"`) gives val R^2
0.31 (RMSE 59): too good to be true, and useless on new patients whose progression is unknown."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout7"


def load_table():
    d = load_diabetes(scaled=False)
    columns = list(d.feature_names) + ["target"]
    return np.column_stack([d.data, d.target]), columns


class Regressor(L.LightningModule):
    def __init__(self, n_in, y_std, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        mse = F.mse_loss(pred, y)
        self.log("val_loss", mse)
        self.log("val_rmse", mse.sqrt() * self.hparams.y_std)
        self.log("val_r2", 1 - mse / y.var(unbiased=False))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(31)
    table, columns = load_table()
    features = [c for c in columns if c != "progression"]
    X = table[:, [columns.index(c) for c in features]]
    y = table[:, columns.index("target")]
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=12)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=8, whiten=True))])
    Z_tr, Z_va = pipe.fit_transform(X_tr), pipe.transform(X_va)
    y_mu, y_sd = y_tr.mean(), y_tr.std()
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    train = TensorDataset(t(Z_tr), t((y_tr - y_mu) / y_sd))
    val = TensorDataset(t(Z_va), t((y_va - y_mu) / y_sd))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(Z_tr.shape[1], float(y_sd)), DataLoader(train, batch_size=32, shuffle=True),
                DataLoader(val, batch_size=128))
    m = trainer.callback_metrics
    print(f"val_rmse={m['val_rmse'].item():.1f} val_r2={m['val_r2'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
