"""Bug: metric learning on the 8x8 digits with a batch-hard triplet loss (Hermans et al.): a small conv embedder
with BatchNorm, L2-free 32-d embeddings, for every anchor the farthest positive and the closest negative in the
batch, margin 0.5, evaluated by 1-nearest-neighbour accuracy against the training embeddings. The pairwise distance
matrix is computed by hand as `(e[:, None] - e[None]).pow(2).sum(-1).sqrt()`; its diagonal is exactly zero and the
derivative of sqrt at zero is infinite. The diagonal is masked out before the max/min, so its upstream gradient is
zero, but 0 * inf = NaN in the backward of sqrt: the very first backward pass fills every gradient with NaN, Adam
writes NaN into every weight, and the run trains on to the end with a NaN loss. Symptom (plain run, 168 steps):
val 1-NN acc 0.10 with NaN embeddings and NaN val loss vs 0.99 (val triplet 0.13) with `.clamp_min(1e-12).sqrt()`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout10"


def pairwise_distances(emb):
    return (emb[:, None, :] - emb[None, :, :]).pow(2).sum(-1).sqrt()


def batch_hard_triplet_loss(emb, labels, margin):
    dist = pairwise_distances(emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    hardest_pos = dist.masked_fill(~same | eye, 0.0).max(dim=1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class TripletEmbedder(L.LightningModule):
    def __init__(self, dim=32, margin=0.5, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, dim),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = batch_hard_triplet_loss(self(x), y, self.hparams.margin)
        self.log("train/triplet", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/triplet", batch_hard_triplet_loss(self(x), y, self.hparams.margin), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def knn_accuracy(model, train_x, train_y, val_x, val_y):
    model.eval()
    with torch.no_grad():
        e_train, e_val = model(train_x), model(val_x)
    nearest = torch.cdist(e_val, e_train).argmin(dim=1)
    return float((train_y[nearest] == val_y).float().mean()), bool(torch.isfinite(e_val).all())


def main():
    L.seed_everything(3141)
    digits = load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    ds = TensorDataset(x, torch.tensor(digits.target))
    train_ds, val_ds = random_split(ds, [1437, 360], generator=torch.Generator().manual_seed(4))

    model = TripletEmbedder()
    trainer = L.Trainer(
        max_epochs=12,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="triplet_digits"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=96, shuffle=True, drop_last=True),
                DataLoader(val_ds, batch_size=120))
    tx, ty = ds.tensors[0][train_ds.indices], ds.tensors[1][train_ds.indices]
    vx, vy = ds.tensors[0][val_ds.indices], ds.tensors[1][val_ds.indices]
    acc, finite = knn_accuracy(model, tx, ty, vx, vy)
    print(f"SYMPTOM val_1nn_acc={acc:.3f} embeddings_finite={finite} "
          f"val_triplet={float(trainer.callback_metrics['val/triplet']):.3f}")
    print(f"SYMPTOM global_step={trainer.global_step} epoch={trainer.current_epoch}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
