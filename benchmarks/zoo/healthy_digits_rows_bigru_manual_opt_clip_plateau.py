"""Healthy: scikit-learn digits read as a sequence - each 8x8 image is 8 time steps of 8 pixel intensities (top row
to bottom row), fed to a 2-layer bidirectional GRU whose final states go to a linear classifier. Written with
manual optimization (`automatic_optimization = False`): manual_backward, `self.clip_gradients` by norm, optimizer
step, and a ReduceLROnPlateau scheduler stepped by hand on the validation loss at the end of each validation epoch.
Small batches of 16, dropout between GRU layers. Final val acc 0.99."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"


class RowGRU(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.gru = nn.GRU(8, hidden, num_layers=2, dropout=0.2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 10)

    def forward(self, rows):
        _, h = self.gru(rows)                      # h: (layers * 2, B, hidden)
        return self.head(torch.cat([h[-2], h[-1]], 1))

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
        opt.step()
        self.log("train_loss", loss, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        self.lr_schedulers().step(self.trainer.callback_metrics["val_loss"])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)]


if __name__ == "__main__":
    L.seed_everything(88)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16.0   # (n, 8 rows, 8 pixels)
    y = torch.tensor(digits.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=88, stratify=y)
    model = RowGRU()
    trainer = L.Trainer(
        max_epochs=10,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="digits_rows_bigru"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=360))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
