"""Bug: a multi-task wine model (sklearn `load_wine`, 178 rows). Column 0 (alcohol) is held out as an auxiliary
regression target, the other 12 standardized columns are inputs; a shared trunk feeds a cultivar head (3-way cross-
entropy) and an alcohol head (MSE on the standardized alcohol), loss = CE + 0.5 * MSE, Adam, batch size 16.

The alcohol head returns shape (B, 1) and the target is (B,), so `F.mse_loss(pred, target)` broadcasts to a (B, B)
matrix and compares every prediction with every target in the batch (torch only prints a UserWarning). The gradient
pushes each prediction towards the batch mean of the target, so the alcohol head learns roughly the constant mean
while the cultivar head trains normally and the total loss still goes down. Fix: `pred.squeeze(-1)`. Symptom: val
alcohol R^2 0.037 vs 0.524 with the squeezed prediction (cultivar accuracy 0.978 in both)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout23"


class WineMultiTask(L.LightningModule):
    def __init__(self, n_in=12, hidden=64, lr=3e-3, aux_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.cultivar_head = nn.Linear(hidden, 3)
        self.alcohol_head = nn.Linear(hidden, 1)

    def forward(self, x):
        h = self.trunk(x)
        return self.cultivar_head(h), self.alcohol_head(h)

    def _losses(self, batch):
        x, cultivar, alcohol = batch
        logits, alcohol_pred = self(x)
        ce = F.cross_entropy(logits, cultivar)
        mse = F.mse_loss(alcohol_pred, alcohol)
        return ce, mse, logits, alcohol_pred

    def training_step(self, batch, batch_idx):
        ce, mse, _, _ = self._losses(batch)
        loss = ce + self.hparams.aux_weight * mse
        self.log_dict({"train_loss": loss, "train_ce": ce, "train_mse": mse}, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        _, cultivar, alcohol = batch
        ce, _, logits, alcohol_pred = self._losses(batch)
        r2 = 1 - ((alcohol_pred.reshape(-1) - alcohol) ** 2).sum() / ((alcohol - alcohol.mean()) ** 2).sum()
        self.log_dict({"val_ce": ce, "val_acc": (logits.argmax(1) == cultivar).float().mean(), "val_r2": r2})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2305)
    wine = load_wine()
    x_tr, x_va, y_tr, y_va = train_test_split(wine.data, wine.target, test_size=0.25, random_state=1,
                                              stratify=wine.target)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)

    def to_dataset(x, y):
        x = torch.tensor(x, dtype=torch.float32)
        return TensorDataset(x[:, 1:], torch.tensor(y), x[:, 0].clone())

    model = WineMultiTask()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(to_dataset(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(to_dataset(x_va, y_va), batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_r2_alcohol={float(m['val_r2']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
