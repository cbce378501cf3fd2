"""Bug (manual optimization, calls in the wrong order): a breast-cancer MLP trained with
`automatic_optimization = False`. The step is written `self.manual_backward(loss)`, `opt.zero_grad()`,
`opt.step()`: `zero_grad` (set_to_none) wipes the gradients that backward just produced, so every `opt.step()` finds
no gradient and AdamW skips every parameter; the scheduler still steps. The model stays at its initialisation.
Symptom: val acc 0.62 and val loss 0.68 (ln 2 = 0.69) after 30 epochs; with `zero_grad` before `manual_backward` (the
fix) val acc 0.98."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-trend", "update-ratio", "dead-gradient"}
SPLIT = "heldout7"


class ManualClassifier(L.LightningModule):
    def __init__(self, n_features, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(64, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        sched = self.lr_schedulers()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.manual_backward(loss)
        opt.zero_grad()
        opt.step()
        sched.step()
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(13)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=5, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    train = TensorDataset(t(scaler.transform(X_tr)), torch.tensor(y_tr))
    val = TensorDataset(t(scaler.transform(X_va)), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ManualClassifier(X.shape[1]), DataLoader(train, batch_size=32, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
