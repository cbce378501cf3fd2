"""Bug: metric learning on sklearn digits - an MLP embeds each 8x8 image into 32 dimensions and is trained with a
triplet loss over in-batch triplets (for each anchor a random same-class positive and a random other-class
negative), then evaluated by 1-nearest-neighbour accuracy of validation embeddings against the training ones.
The loss is written by hand as `(d(a, p) - d(a, n) + margin).mean()` - the hinge `clamp(min=0)` of the triplet
loss was dropped when the formula was copied from a paper's equation. Without the hinge the loss is unbounded
below: once triplets are satisfied, the cheapest way to lower it further is to scale every embedding up, so the
weights keep growing and easy triplets dominate instead of the hard ones. Symptom: the total weight norm grows
from 9.8 to 43.5 (last layer 3.3 -> 20.0; train loss -5951 and still falling) and 1-NN val acc is 0.33, vs weight
norm 9.8 -> 11.6 and 1-NN val acc 0.94 with `F.relu(d_ap - d_an + margin)`."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"weight-growth"}
SPLIT = "heldout13"


def in_batch_triplets(labels, generator=None):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos_w = (same & ~eye).float()
    neg_w = (~same).float()
    has = (pos_w.sum(1) > 0) & (neg_w.sum(1) > 0)
    anchors = torch.nonzero(has).squeeze(1)
    pos = torch.multinomial(pos_w[anchors], 1).squeeze(1)
    neg = torch.multinomial(neg_w[anchors], 1).squeeze(1)
    return anchors, pos, neg


class TripletEmbedder(L.LightningModule):
    def __init__(self, dim=32, margin=1.0, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, dim))
        self.bank = None
        self.knn_acc = float("nan")

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        emb = self(x)
        a, p, n = in_batch_triplets(y)
        d_ap = (emb[a] - emb[p]).pow(2).sum(1).sqrt()
        d_an = (emb[a] - emb[n]).pow(2).sum(1).sqrt()
        loss = (d_ap - d_an + self.hparams.margin).mean()
        self.log("train_loss", loss)
        self.log("last_layer_weight_norm", self.net[-1].weight.norm())
        return loss

    def on_validation_epoch_start(self):
        x, y = self.train_ref  # the training images form the 1-NN reference bank
        with torch.no_grad():
            self.bank = (self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        bank_emb, bank_y = self.bank
        nearest = torch.cdist(self(x), bank_emb).argmin(1)
        self.log("val_knn_acc", (bank_y[nearest] == y).float().mean())

    def on_validation_epoch_end(self):
        self.knn_acc = float(self.trainer.callback_metrics["val_knn_acc"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(404)
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    Xt, Xv, yt, yv = train_test_split(X, d.target, test_size=0.3, random_state=8, stratify=d.target)
    Xt, Xv = torch.from_numpy(Xt), torch.from_numpy(Xv)
    yt, yv = torch.from_numpy(yt).long(), torch.from_numpy(yv).long()
    model = TripletEmbedder()
    model.train_ref = (Xt, yt)
    first_norm = sum(p.norm() ** 2 for p in model.parameters()).sqrt()
    print(f"SYMPTOM initial last_layer_weight_norm= {model.net[-1].weight.norm():.2f}")
    trainer = L.Trainer(
        max_epochs=20,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="digits_triplet"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(Xt, yt), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(Xv, yv), batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_knn_acc={model.knn_acc:.3f} train_loss={float(m['train_loss']):.2f} "
          f"last_layer_weight_norm={model.net[-1].weight.norm():.2f} "
          f"total_weight_norm={first_norm:.1f}->{sum(p.norm() ** 2 for p in model.parameters()).sqrt():.1f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
