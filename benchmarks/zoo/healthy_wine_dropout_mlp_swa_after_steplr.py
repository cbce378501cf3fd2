"""Healthy: scikit-learn's wine cultivars (13 standardised features, 3 classes) with a dropout-heavy MLP trained
by SGD + momentum under a StepLR decay, then Lightning's StochasticWeightAveraging from 60 % of training (SWA lr
0.01, cosine annealing into it); the averaged weights are what is validated at the end. Final: val acc 1.00,
val loss 0.01."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import StochasticWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"


class WineMLP(L.LightningModule):
    def __init__(self, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(13, 64), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(64, 3),
        )

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
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.3)]


def main():
    L.seed_everything(178)
    x, y = load_wine(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, stratify=y, random_state=3)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    to_x = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_x(x_tr), torch.tensor(y_tr))
    val = TensorDataset(to_x(x_va), torch.tensor(y_va))
    model = WineMLP()
    trainer = L.Trainer(
        max_epochs=40,
        callbacks=[*lightning_sanity.default_callbacks(),
                   StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=0.6, annealing_epochs=3)],
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="wine_swa"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=64))
    metrics = trainer.validate(model, DataLoader(val, batch_size=64), verbose=False)[0]
    print(f"SYMPTOM val_acc={metrics['val_acc']:.3f} val_loss={metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
