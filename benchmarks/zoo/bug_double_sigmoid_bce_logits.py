"""Bug: the model ends with torch.sigmoid and the loss is BCEWithLogitsLoss, which applies a sigmoid again: the
loss sees probabilities where it expects logits (its "probabilities" are squeezed into [0.5, 0.73]).
Breast cancer, Adam."""

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(30, 32), nn.Linear(32, 1)
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x)))).squeeze(1)  # BUG with BCEWithLogitsLoss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", ((self(x) > 0.5).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(59)
    X, y = load_breast_cancer(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Net(), DataLoader(TensorDataset(X[:450], y[:450]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[450:], y[450:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
