"""Healthy: rare-event detection (about 4 % positives, synthetic transactions from a seeded torch.Generator with a
learnable rule) trained with BCEWithLogitsLoss(pos_weight=negatives/positives), the standard remedy for a rare
positive class. MLP, Adam; validation reports recall and precision."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
W = torch.randn(12, generator=torch.Generator().manual_seed(2))


def transactions(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    score = x @ W / W.norm() + 0.3 * torch.randn(n, generator=g)
    return x, (score > 1.75).float()


class Detector(L.LightningModule):
    def __init__(self, pos_weight):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 1))
        self.loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self.net(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = (self.net(x).squeeze(-1) > 0).float()
        self.log("val_recall", (pred * y).sum() / y.sum().clamp_min(1))
        self.log("val_precision", (pred * y).sum() / pred.sum().clamp_min(1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(6)
    x, y = transactions(4000, 0)
    pos_weight = float((1 - y).sum() / y.sum())
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Detector(pos_weight), DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(*transactions(1000, 1)), batch_size=1000))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
