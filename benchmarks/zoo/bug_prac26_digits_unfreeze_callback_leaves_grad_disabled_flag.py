"""Bug: sklearn digits with an MLP backbone (64-128-64) and a linear head, trained in two phases: for the first two
epochs only the head trains, then a user-written `UnfreezeBackbone` callback makes the backbone trainable and adds it
to the optimizer as a new parameter group at a lower learning rate. The module implements the frozen phase the way
many fine-tuning snippets do: a `self.backbone_frozen` flag, and `forward` runs the backbone under
`torch.set_grad_enabled(not self.backbone_frozen)` to save memory while it is frozen.

The callback flips `requires_grad` back on and registers the parameter group, but never resets the module's
`backbone_frozen` flag, so the backbone keeps running with gradients disabled. Its parameters are trainable and in the
optimizer yet never receive a gradient; the head alone trains on top of random features and the loss still falls.
Symptom after 8 epochs: val accuracy 0.782, val loss 1.88 vs 0.947, 0.20 when the callback also sets
`pl_module.backbone_frozen = False`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout26"


class UnfreezeBackbone(L.Callback):
    def __init__(self, at_epoch=2, lr_factor=0.3):
        self.at_epoch, self.lr_factor = at_epoch, lr_factor

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch != self.at_epoch:
            return
        for p in pl_module.backbone.parameters():
            p.requires_grad_(True)
        opt = trainer.optimizers[0]
        opt.add_param_group({"params": list(pl_module.backbone.parameters()),
                             "lr": opt.param_groups[0]["lr"] * self.lr_factor})


class DigitsClassifier(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.backbone_frozen = True
        self.backbone.requires_grad_(False)

    def forward(self, x):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            feats = self.backbone(x)
        return self.head(feats)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(910)
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=1)
    mean, std = x_tr.mean(0), x_tr.std(0) + 0.1
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_x(x_tr), torch.tensor(y_tr))
    val = TensorDataset(to_x(x_va), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=[UnfreezeBackbone(), *lightning_sanity.default_callbacks()])
    trainer.fit(DigitsClassifier(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
