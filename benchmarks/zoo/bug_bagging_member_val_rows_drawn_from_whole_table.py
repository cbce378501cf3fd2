"""Bug: one member of a bagged ensemble of MLPs whose LightningDataModule trains on the member's bootstrap sample
(n rows drawn with replacement) but validates on "a random 20 % of the rows", drawn from the whole table instead of
from the out-of-bag rows: a bootstrap holds about 63 % of the distinct rows, so about two thirds of the validation
rows were trained on (most of them several times), and the MLP, big enough to memorise the 15 % of flipped labels,
scores them from memory. Otherwise the same script as healthy_bagging_member_datamodule_oob_validation (synthetic
loan-default table, MLP 256-256 with BatchNorm, Adam, StepLR per epoch). Symptom: val acc 0.873 vs 0.694 out-of-bag
(the label noise caps an honest score at 0.85: 0.873 is too good to be true)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout8"


def make_loans(n, g):
    x = torch.randn(n, 12, generator=g)
    score = x[:, 0] + x[:, 1] * x[:, 2] - torch.relu(x[:, 3]) + 0.7 * torch.sin(3 * x[:, 4]) + 0.5 * x[:, 5] ** 2 - 0.5
    y = (score > 0).long()
    flip = torch.rand(n, generator=g) < 0.15
    return x, torch.where(flip, 1 - y, y)


class BaggingMemberData(L.LightningDataModule):
    def __init__(self, member, n_rows=1500, batch_size=64):
        super().__init__()
        self.member, self.n_rows, self.batch_size = member, n_rows, batch_size

    def setup(self, stage=None):
        x, y = make_loans(self.n_rows, torch.Generator().manual_seed(1234))
        g = torch.Generator().manual_seed(100 + self.member)
        boot = torch.randint(0, self.n_rows, (self.n_rows,), generator=g)
        val_rows = torch.randperm(self.n_rows, generator=g)[: self.n_rows // 5]
        mean, std = x[boot].mean(0), x[boot].std(0)
        self.train_set = TensorDataset((x[boot] - mean) / std, y[boot])
        self.val_set = TensorDataset((x[val_rows] - mean) / std, y[val_rows])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=1024)


class MemberMLP(L.LightningModule):
    def __init__(self, hidden=256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 2))

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
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.5)]


def main():
    L.seed_everything(41)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MemberMLP(), datamodule=BaggingMemberData(member=3))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
