"""Healthy: binary classification of sklearn's breast cancer set, standardized features, one logit per sample
and BCEWithLogitsLoss, SGD with momentum; a torchmetrics-free accuracy in validation."""

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class TumourClassifier(L.LightningModule):
    def __init__(self, lr=0.02):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return self.model(x).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def main():
    L.seed_everything(123)
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=1, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    ds = lambda a, b: TensorDataset(torch.tensor((a - mu) / sd, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))  # noqa: E731
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TumourClassifier(), DataLoader(ds(Xtr, ytr), batch_size=32, shuffle=True), DataLoader(ds(Xva, yva), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
