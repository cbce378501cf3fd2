"""Bug: a two-branch ("chemistry" + "colour/phenolics") late-fusion classifier for the wine cultivar. The data
is kept as one record table in the team's export format, the 13 measurements with the label appended as the last
column (`np.column_stack([X, y])`), and cut into the two modalities by column position: `table[:, :7]` and
`table[:, 7:]`. The second slice runs to the end of the table, so the "colour" modality carries the cultivar
itself (standardised with the rest, so it does not look like an integer label). The labels are taken from
`table[:, -1]` as intended. Training "works": the loss falls fast and the val metrics look excellent (the
val rows carry their label too), better than an honest model reaches, and the model is useless on real records,
which have no label column. Measured (30 epochs): val loss 0.032 with the bug vs 0.070 when the second modality
is `table[:, 7:13]` (val acc 0.978 in both; wine is easy, so the leak shows mostly as over-confidence)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout28"


class WineDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        wine = load_wine()
        table = np.column_stack([wine.data, wine.target])
        chem = table[:, :7]
        colour = table[:, 7:]
        y = table[:, -1].astype(np.int64)
        splits = train_test_split(chem, colour, y, test_size=0.25, random_state=5, stratify=y)
        chem_tr, chem_va, col_tr, col_va, y_tr, y_va = splits
        s_chem = StandardScaler().fit(chem_tr)
        s_col = StandardScaler().fit(col_tr)
        self.n_chem, self.n_colour = chem.shape[1], colour.shape[1]

        def ds(c, o, t):
            return TensorDataset(torch.tensor(s_chem.transform(c), dtype=torch.float32),
                                 torch.tensor(s_col.transform(o), dtype=torch.float32), torch.tensor(t))

        self.train_ds = ds(chem_tr, col_tr, y_tr)
        self.val_ds = ds(chem_va, col_va, y_va)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class TwoBranchWine(L.LightningModule):
    def __init__(self, n_chem, n_colour, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.chem = nn.Sequential(nn.Linear(n_chem, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
        self.colour = nn.Sequential(nn.Linear(n_colour, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
        self.mix = nn.Parameter(torch.zeros(2))

    def forward(self, x_chem, x_colour):
        w = torch.softmax(self.mix, dim=0)
        return w[0] * self.chem(x_chem) + w[1] * self.colour(x_colour)

    def training_step(self, batch, batch_idx):
        xc, xo, y = batch
        loss = F.cross_entropy(self(xc, xo), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        xc, xo, y = batch
        logits = self(xc, xo)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(284)
    dm = WineDataModule()
    dm.setup()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TwoBranchWine(dm.n_chem, dm.n_colour), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
