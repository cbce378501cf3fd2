"""Healthy: sklearn's wine (13 standardized features, 3 classes) with CrossEntropyLoss(label_smoothing=0.1),
SGD with Nesterov momentum and a MultiStepLR decay late in training."""

import lightning as L
import torch
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class WineNet(L.LightningModule):
    def __init__(self, lr=0.05, smoothing=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=smoothing)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20, 26], gamma=0.3)]


def main():
    L.seed_everything(4)
    X, y = load_wine(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    tr = TensorDataset(torch.tensor(sc.transform(Xtr), dtype=torch.float32), torch.tensor(ytr))
    va = TensorDataset(torch.tensor(sc.transform(Xva), dtype=torch.float32), torch.tensor(yva))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=4, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineNet(), DataLoader(tr, batch_size=16, shuffle=True), DataLoader(va, batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
