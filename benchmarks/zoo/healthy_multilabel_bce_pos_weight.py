"""Healthy: multi-label classification (8 labels, 0-3 active per sample, rare labels) with
`BCEWithLogitsLoss(pos_weight=negatives/positives)` computed on the training split. Synthetic rule: label k is on
when a fixed random projection k of the 20 features exceeds a label-specific threshold. MLP with BatchNorm,
Adam, gradient accumulation over 2 batches."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
FEATURES, LABELS = 20, 8
W = torch.randn(FEATURES, LABELS, generator=torch.Generator().manual_seed(99))
THRESH = torch.linspace(0.5, 2.0, LABELS) * FEATURES ** 0.5


def multilabel(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return x, (x @ W > THRESH).float()


class MultiLabelNet(L.LightningModule):
    def __init__(self, pos_weight):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, LABELS))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss_fn(logits, y))
        self.log("val_exact_match", ((logits > 0) == y.bool()).all(1).float().mean())
        self.log("val_label_acc", ((logits > 0) == y.bool()).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(1503)
    x, y = multilabel(2000, 0)
    pos = y.sum(0)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        accumulate_grad_batches=2, log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiLabelNet(pos_weight=(len(y) - pos) / pos.clamp(min=1)),
                DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*multilabel(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
