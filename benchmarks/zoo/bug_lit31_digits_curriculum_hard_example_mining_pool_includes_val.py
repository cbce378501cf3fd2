"""Bug: a digits MLP trained with a hard-example-mining curriculum. The LightningDataModule holds a held-out val
split and, with `reload_dataloaders_every_n_epochs=2`, `train_dataloader()` is rebuilt every other epoch: after the
warm-up epochs it scores the labelled pool with the current model and appends the 300 highest-loss examples (weighted
up by repetition) to the base training set. The pool it mines from is `self.x_all`, the whole labelled set scaled in
setup -- train *and* val -- instead of `self.x_train`. About a third of every mined set (93-100 of 300, measured)
are validation images, and from epoch 2 on they are trained on, twice each per epoch. Training still "works" and
validation looks better than it should: val accuracy 0.988 (val loss 0.117) against 0.964 (val loss 0.728) when the
pool is the training split only.
"""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout31"


class DigitsMiningDataModule(L.LightningDataModule):
    def __init__(self, n_hard=300, warmup_epochs=2, batch_size=64):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage):
        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32)
        y = torch.tensor(digits.target)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
        train_idx, val_idx = perm[:1300], perm[1300:]
        mean, std = x[train_idx].mean(0), x[train_idx].std(0) + 1e-3
        self.x_all, self.y_all = (x - mean) / std, y
        self.x_train, self.y_train = self.x_all[train_idx], y[train_idx]
        self.x_val, self.y_val = self.x_all[val_idx], y[val_idx]

    @torch.no_grad()
    def hardest(self, model):
        model.eval()
        losses = F.cross_entropy(model(self.x_all), self.y_all, reduction="none")
        model.train()
        idx = losses.topk(self.hparams.n_hard).indices
        return self.x_all[idx], self.y_all[idx]

    def train_dataloader(self):
        x, y = self.x_train, self.y_train
        if self.trainer.current_epoch >= self.hparams.warmup_epochs:
            hx, hy = self.hardest(self.trainer.lightning_module)
            x, y = torch.cat([x, hx, hx]), torch.cat([y, hy, hy])
        return DataLoader(TensorDataset(x, y), batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x_val, self.y_val), batch_size=256)


class DigitsMLP(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, reload_dataloaders_every_n_epochs=2, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsMLP(), datamodule=DigitsMiningDataModule())
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
