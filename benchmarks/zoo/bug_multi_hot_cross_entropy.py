"""Bug: a multi-label task (each sample can carry several of 6 tags) trained with cross_entropy on the multi-hot
tag vectors, as if they were class probabilities. Rows sum to the number of tags, so cross-entropy pushes every
tagged class towards 1/k and the independent tag decisions are never learned; binary_cross_entropy_with_logits is
the multi-label loss. Synthetic tags from a fixed linear rule (seeded torch.Generator), MLP, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
W = torch.randn(20, 6, generator=torch.Generator().manual_seed(5))


def tagged(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    return x, (x @ W + 0.5 * torch.randn(n, 6, generator=g) > 1.0).float()


class Tagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 6))

    def training_step(self, batch, batch_idx):
        x, tags = batch
        loss = F.cross_entropy(self.net(x), tags)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, tags = batch
        self.log("val_f1_proxy", ((self.net(x) > 0).float() == tags).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(), DataLoader(TensorDataset(*tagged(2000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*tagged(400, 1)), batch_size=400))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
