"""Bug: an MLP with an SVM-style head (one margin score, labels mapped to -1/+1) on sklearn's breast-cancer set,
trained with a hinge loss written out by hand as `(1 - y * score).mean()`: the `clamp(min=0)` (the "max(0, .)" of
the hinge) was dropped. Without it samples already beyond the margin still pay off: the loss is linear in the
scores and unbounded below, so the optimizer keeps inflating every score: the weights grow, and since each layer's
gradient scales with the other layers' weights, weights and gradients feed each other until the scores overflow and
the loss turns NaN (within 5 epochs when run without the suite). Features standardized with the training split's
statistics, MLP 30-64-64-1 with ReLU, SGD with momentum and weight decay 1e-4, cosine schedule per epoch. Symptom
(without the suite's callbacks): train loss nan, val acc 0.000 (NaN scores) vs val acc 0.986 / val hinge loss 0.040
with the clamp."""

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"weight-growth", "loss-trend", "exploding-gradient", "non-finite"}
SPLIT = "heldout8"


def hinge(score, y):
    return (1 - y * score).mean()


class MarginMLP(L.LightningModule):
    def __init__(self, max_epochs):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        self.max_epochs = max_epochs

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = hinge(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        score = self(x)
        self.log("val_loss", torch.clamp(1 - y * score, min=0).mean())
        self.log("val_acc", (torch.sign(score) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)]


def main():
    L.seed_everything(29)
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=7, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0)
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    to_y = lambda a: torch.tensor(2.0 * a - 1.0, dtype=torch.float32)  # noqa: E731
    epochs = 40
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MarginMLP(epochs), DataLoader(TensorDataset(to_x(x_tr), to_y(y_tr)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(to_x(x_va), to_y(y_va)), batch_size=143))
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
