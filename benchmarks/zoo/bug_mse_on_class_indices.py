"""Bug: digit classification trained with MSE against the class index: `F.mse_loss(logits, y.float()
.unsqueeze(1))` where logits has 10 columns, so the (batch, 1) target broadcasts over all 10 outputs (PyTorch's
UserWarning scrolls past among Lightning's start-up messages). Every output learns to predict the class number;
argmax accuracy stays near chance. MLP on sklearn digits, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout"


class DigitsMLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y.float().unsqueeze(1))  # BUG: class indices as a regression target, broadcast
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.mse_loss(logits, y.float().unsqueeze(1)))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(1523)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsMLP(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=150))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
