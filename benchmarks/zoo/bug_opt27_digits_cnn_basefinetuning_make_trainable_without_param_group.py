"""Bug: transfer learning on the sklearn digits. A small BatchNorm CNN is pretrained on digits 0-4, then fine-tuned
on digits 5-9 with a new head. A custom `BaseFinetuning` callback freezes the backbone for the first epochs and
"unfreezes" it at epoch 4 with `self.make_trainable(pl_module.backbone)`, instead of
`self.unfreeze_and_add_param_group(...)`. The optimizer was built from the parameters that required grad at the
start (the head only), so from epoch 4 on the backbone computes gradients every step (it costs time, and its
BatchNorm keeps re-estimating statistics) but no optimizer ever applies them: it stays at its pretrained values.
Training still improves through the head, so the run looks like an ordinary fine-tune that plateaus early.
Measured (own metric): buggy val acc 0.799 / val loss 0.745; fixed (`unfreeze_and_add_param_group` with lr/10)
val acc 0.989 / val loss 0.138."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BaseFinetuning
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout27"


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def pretrain(backbone, x, y, epochs=2):
    model = nn.Sequential(backbone, nn.Linear(32, 5))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return backbone


class UnfreezeBackboneAt(BaseFinetuning):
    def __init__(self, unfreeze_at_epoch=4):
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch

    def freeze_before_training(self, pl_module):
        self.freeze(pl_module.backbone)

    def finetune_function(self, pl_module, current_epoch, optimizer):
        if current_epoch == self.unfreeze_at_epoch:
            self.make_trainable(pl_module.backbone)


class FineTuner(L.LightningModule):
    def __init__(self, backbone, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.backbone(x))

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
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)


def main():
    L.seed_everything(1227)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(y)
    old, new = y < 5, y >= 5
    mean, std = X[old].mean(), X[old].std()
    X = (X - mean) / std
    backbone = pretrain(make_backbone(), X[old], y[old])
    X_tr, X_va, y_tr, y_va = train_test_split(X[new], y[new] - 5, test_size=0.3, random_state=2,
                                              stratify=y[new])
    callbacks = [UnfreezeBackboneAt(4), *lightning_sanity.default_callbacks()]
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, callbacks=callbacks)
    trainer.fit(FineTuner(backbone), DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
