"""Healthy: SimCLR-style contrastive pretraining on digits: two noisy/masked views per image, an encoder and a
projection head, NT-Xent loss written with cross_entropy over the 2B x 2B similarity matrix whose diagonal is
masked with -inf; the dataset's digit labels are in the batch but unused. Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class SimCLR(L.LightningModule):
    def __init__(self, temperature=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64))
        self.projector = nn.Sequential(nn.ReLU(), nn.Linear(64, 32))

    def augment(self, x):
        keep = (torch.rand_like(x) > 0.2).float()
        return x * keep + 0.1 * torch.randn_like(x)

    def forward(self, x):
        return F.normalize(self.projector(self.encoder(x)), dim=1)

    def nt_xent(self, z1, z2):
        z = torch.cat([z1, z2])
        sim = z @ z.t() / self.hparams.temperature
        sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
        b = z1.shape[0]
        targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
        return F.cross_entropy(sim, targets)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = self.nt_xent(self(self.augment(x)), self(self.augment(x)))
        self.log("train_nt_xent", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self.log("val_nt_xent", self.nt_xent(self(self.augment(x)), self(self.augment(x))))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(89)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SimCLR(), DataLoader(TensorDataset(x[:1536], y[:1536]), batch_size=128, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(x[1536:], y[1536:]), batch_size=128, drop_last=True))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
