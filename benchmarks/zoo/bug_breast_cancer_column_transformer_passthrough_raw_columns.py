"""Bug: breast-cancer (malignant vs benign) MLP with a scikit-learn ColumnTransformer in front: a StandardScaler on
the columns the user listed as "numeric" and `remainder="passthrough"` for the rest. The list was written for the
ten `mean *` columns only; the ten `error` and ten `worst *` columns go through untouched, including `worst area`
(up to 4250), `worst perimeter` (up to 250) and `area error` (up to 540), next to standardised columns of size ~1.
The first layer's pre-activations are dominated by three raw columns, and Adam at a normal learning rate never
fits well. Symptom: val acc 0.91 / val loss 0.23 vs 0.98 / 0.07 with every column scaled."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout10"


class BreastCancerMLP(L.LightningModule):
    def __init__(self, n_in, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.binary_cross_entropy_with_logits(logits, y), prog_bar=True)
        self.log("val/acc", ((logits > 0).float() == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(61)
    data = load_breast_cancer()
    names = list(data.feature_names)
    numeric = [i for i, n in enumerate(names) if n.startswith("mean ")]
    x_train, x_val, y_train, y_val = train_test_split(data.data, data.target, test_size=0.25, stratify=data.target,
                                                      random_state=12)
    pre = ColumnTransformer([("scale", StandardScaler(), numeric)], remainder="passthrough")
    x_train, x_val = pre.fit_transform(x_train), pre.transform(x_val)

    def loader(x, y, **kw):
        ds = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        return DataLoader(ds, **kw)

    model = BreastCancerMLP(x_train.shape[1])
    trainer = L.Trainer(
        max_epochs=30,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="breast_cancer_column_transformer"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader(x_train, y_train, batch_size=32, shuffle=True), loader(x_val, y_val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val/acc']):.3f} val_loss={float(m['val/loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
