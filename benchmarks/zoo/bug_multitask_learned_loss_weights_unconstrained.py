"""Bug: a multi-task tabular MLP whose two task losses are combined with "learned" task weights,
`self.task_weights = nn.Parameter(torch.ones(2))` and `loss = (self.task_weights * losses).sum()`, in the same
optimizer as the network and with nothing that keeps them positive (Kendall et al.'s `exp(-s) * L + s` form was
simplified away). The gradient of each weight is its task's loss, always positive, so Adam walks both weights down
at about `lr` per step; once they cross zero the optimizer maximises both losses and the run diverges. Symptom
after 30 epochs: weights -2.8, val default acc 0.24 (majority class 0.61) and val amount R^2 -3e5, vs 0.83 and 0.86
with the uncertainty-weighting form `sum(exp(-log_var_i) * loss_i + log_var_i)`.

Set-up: synthetic loan applications (12 standardized features), shared trunk (Linear-BatchNorm-ReLU-Dropout), a
default head (BCE with logits) and a loss-amount head (MSE on the standardized amount), dict batches, Adam at a
constant lr."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence", "loss-trend", "weight-growth", "exploding-gradient"}
SPLIT = "heldout6"


class LoanDataset(Dataset):
    def __init__(self, x, default, amount):
        self.x, self.default, self.amount = x, default, amount

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "default": self.default[i], "amount": self.amount[i]}


def make_loans(n, g):
    x = torch.randn(n, 12, generator=g)
    logit = 1.5 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * x[:, 2] * x[:, 3] - 0.6
    default = (torch.rand(n, generator=g) < torch.sigmoid(2 * logit)).float()
    amount = 3.0 + 1.2 * x[:, 4] + 0.6 * x[:, 0] - 0.5 * x[:, 5] ** 2 + 0.5 * torch.randn(n, generator=g)
    return x, default, amount


class MultiTaskMLP(L.LightningModule):
    def __init__(self, n_features=12, hidden=64, lr=3e-3):
        super().__init__()
        self.lr = lr
        self.trunk = nn.Sequential(nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1),
                                   nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1))
        self.default_head = nn.Linear(hidden, 1)
        self.amount_head = nn.Linear(hidden, 1)
        self.task_weights = nn.Parameter(torch.ones(2))

    def forward(self, x):
        h = self.trunk(x)
        return self.default_head(h).squeeze(-1), self.amount_head(h).squeeze(-1)

    def task_losses(self, batch):
        default_logit, amount = self(batch["features"])
        return (F.binary_cross_entropy_with_logits(default_logit, batch["default"]),
                F.mse_loss(amount, batch["amount"]), default_logit, amount)

    def training_step(self, batch, batch_idx):
        cls_loss, reg_loss, _, _ = self.task_losses(batch)
        losses = torch.stack([cls_loss, reg_loss])
        loss = (self.task_weights * losses).sum()
        self.log_dict({"train_loss": loss, "train_cls": cls_loss, "train_reg": reg_loss})
        return loss

    def validation_step(self, batch, batch_idx):
        cls_loss, reg_loss, logit, amount = self.task_losses(batch)
        r2 = 1 - reg_loss / batch["amount"].var(unbiased=False)
        acc = ((logit > 0).float() == batch["default"]).float().mean()
        self.log_dict({"val_cls": cls_loss, "val_reg": reg_loss, "val_acc": acc, "val_r2": r2})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        return opt


def main():
    L.seed_everything(66)
    g = torch.Generator().manual_seed(66)
    x, default, amount = make_loans(2000, g)
    tr, va = slice(0, 1600), slice(1600, None)
    mean, std = x[tr].mean(0), x[tr].std(0)
    x = (x - mean) / std
    a_mean, a_std = amount[tr].mean(), amount[tr].std()
    amount = (amount - a_mean) / a_std
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiTaskMLP(), DataLoader(LoanDataset(x[tr], default[tr], amount[tr]), batch_size=64, shuffle=True),
                DataLoader(LoanDataset(x[va], default[va], amount[va]), batch_size=400))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} majority={max(default[va].mean().item(), 1 - default[va].mean().item()):.3f} "
          f"val_r2={m['val_r2'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
