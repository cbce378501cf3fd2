"""Healthy: sklearn's iris (4 standardized features, 3 classes), SGD with momentum and L2 weight decay 1e-3
(a common setting), many short epochs of a small dataset."""

import lightning as L
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class IrisNet(L.LightningModule):
    def __init__(self, lr=0.05, weight_decay=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.fc1, self.fc2 = nn.Linear(4, 16), nn.Linear(16, 3)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9,
                               weight_decay=self.hparams.weight_decay)


def main():
    L.seed_everything(10)
    X, y = load_iris(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=3, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    f = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=4, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IrisNet(), DataLoader(TensorDataset(f(Xtr), torch.tensor(ytr)), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(f(Xva), torch.tensor(yva)), batch_size=30))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
