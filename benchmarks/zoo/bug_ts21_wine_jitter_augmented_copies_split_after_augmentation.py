"""Bug: a wine cultivar classifier (sklearn `load_wine`) that uses only the four cheap lab assays (alcohol, malic acid,
ash, alcalinity of ash) so the task is genuinely hard, a small MLP with dropout, AdamW and cosine decay. Because the
data set is tiny (178 wines) the author adds jittered copies: every standardized row is repeated eight times with a
little Gaussian noise (0.05 std) to "regularise" the network.

The augmentation is applied to the whole table and only then `train_test_split(..., stratify=y)` is called, so
almost every validation row has seven near-identical jittered siblings in the training set. The network just
memorises the neighbourhood of each wine and the validation accuracy measures recall of training rows, not
generalisation. Training looks excellent. Symptom: val accuracy 0.982 (val loss 0.041) on the leaky split, while
the same model trained with the split done first (augment only the training rows, validate on untouched wines)
reaches 0.889 (val loss 0.722)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout21"
CHEAP_ASSAYS = [0, 1, 2, 3]
COPIES = 8


def jitter_augment(x, y, copies, g, std=0.05):
    xs = x.repeat(copies, 1)
    return xs + std * torch.randn(xs.shape, generator=g), y.repeat(copies)


class WineMLP(L.LightningModule):
    def __init__(self, n_in=len(CHEAP_ASSAYS), hidden=128, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 3))

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
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2101)
    data = load_wine()
    x = torch.tensor(StandardScaler().fit_transform(data.data[:, CHEAP_ASSAYS]), dtype=torch.float32)
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(21)
    x_aug, y_aug = jitter_augment(x, y, COPIES, g)
    x_tr, x_va, y_tr, y_va = train_test_split(x_aug, y_aug, test_size=0.2, stratify=y_aug, random_state=0)
    model = WineMLP()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
