"""Bug: a breast-cancer MLP classifier (sklearn `load_breast_cancer`, 569 rows, 30 features). To shuffle and split
features and labels together the code stacks them into one array, `table = np.column_stack([X, y])`, shuffles the
rows, and then slices the features back out with `table[:, 1:]` instead of `table[:, :-1]` (the label is the LAST
column, the slice drops the first feature, "mean radius", and keeps the label). A StandardScaler fitted on the train
rows, a 2-layer MLP with BCE-with-logits, AdamW and cosine decay.

Every input row therefore contains its own diagnosis as a (scaled) feature. Training converges instantly and the
validation split has the same column, so validation accuracy is perfect and nothing looks wrong. At deployment the
column does not exist; feeding it at its train mean (what an imputer would do) gives the real accuracy. Symptom: val
acc 1.000 with the leak (over-optimistic), 0.947 when the leaked column is imputed with its train mean, vs 0.974 for
the fixed slice (which also keeps "mean radius")."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout23"


class TumourMLP(L.LightningModule):
    def __init__(self, n_features, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2301)
    ds = load_breast_cancer()
    table = np.column_stack([ds.data, ds.target]).astype(np.float32)
    table = table[np.random.default_rng(0).permutation(len(table))]
    X, y = table[:, 1:], table[:, -1]
    n_train = int(0.8 * len(X))
    scaler = StandardScaler().fit(X[:n_train])
    X = scaler.transform(X).astype(np.float32)
    x_tr, y_tr = torch.from_numpy(X[:n_train]), torch.from_numpy(y[:n_train])
    x_va, y_va = torch.from_numpy(X[n_train:]), torch.from_numpy(y[n_train:])
    model = TumourMLP(X.shape[1])
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=128))
    model.eval()
    x_deploy = x_va.clone()
    x_deploy[:, -1] = x_tr[:, -1].mean()
    with torch.no_grad():
        deploy_acc = ((model(x_deploy) > 0).float() == y_va).float().mean()
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"acc_last_column_imputed={float(deploy_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
