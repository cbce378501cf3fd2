"""Bug: a multi-label problem (several of 8 labels can be on at once) trained with `F.cross_entropy(logits,
multi_hot)`: PyTorch accepts float targets as class probabilities, but a multi-hot row is not a distribution
(it sums to 0, 1, 2 or 3), so the loss is not the intended per-label BCE and rows with no label contribute
nothing. Synthetic features with a random-projection rule, MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout"
FEATURES, LABELS = 20, 8
W = torch.randn(FEATURES, LABELS, generator=torch.Generator().manual_seed(98))


def multilabel(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    return x, (x @ W > 1.2 * FEATURES ** 0.5).float()


class MultiLabelNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, LABELS))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)  # BUG: meant F.binary_cross_entropy_with_logits
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_label_acc", ((logits > 0) == y.bool()).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(1521)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiLabelNet(), DataLoader(TensorDataset(*multilabel(2000, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*multilabel(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
