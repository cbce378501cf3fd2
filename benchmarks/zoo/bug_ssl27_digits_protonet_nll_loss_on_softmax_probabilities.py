"""Bug (loss input): a prototypical network for few-shot digit recognition. Episodes are drawn from the training
classes 0-6 (5-way, 5-shot, 10 queries per class); validation uses fixed 3-way 5-shot episodes over the unseen
classes 7-9. Prototypes are the mean support embeddings and the class scores are negative squared Euclidean
distances. The episode loss is written as `F.nll_loss(F.softmax(-dists, dim=1), query_y)`: `nll_loss` expects
log-probabilities, but gets probabilities, so the "loss" is minus the mean probability of the true class (it starts
around -1/N and is bounded by -1). It still pushes the right prototype closer, so accuracy climbs and nothing
crashes, but the gradient vanishes on confidently wrong queries and learning is slower and weaker.

Measured (seed 41, 8 epochs of 60 episodes): this version val_acc=0.700 val_ce=1.393; fixed version
(`F.cross_entropy(-dists, query_y)`) val_acc=0.882 val_ce=0.370."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout27"


class EpisodeDataset(Dataset):
    """Each item is one episode: support images/labels and query images/labels (labels re-indexed 0..n_way-1)."""

    def __init__(self, x, y, classes, n_way, k_shot, n_query, n_episodes, seed, fixed):
        self.by_class = [x[y == c] for c in classes]
        self.n_way, self.k_shot, self.n_query, self.n_episodes = n_way, k_shot, n_query, n_episodes
        self.fixed = fixed
        self.seed = seed
        self.stream = torch.Generator().manual_seed(seed)

    def __len__(self):
        return self.n_episodes

    def __getitem__(self, idx):
        # validation episodes are the same every epoch; training episodes are fresh draws
        g = torch.Generator().manual_seed(self.seed * 1000 + idx) if self.fixed else self.stream
        ways = torch.randperm(len(self.by_class), generator=g)[: self.n_way]
        sx, sy, qx, qy = [], [], [], []
        for new_label, c in enumerate(ways.tolist()):
            pool = self.by_class[c]
            pick = torch.randperm(len(pool), generator=g)[: self.k_shot + self.n_query]
            sx.append(pool[pick[: self.k_shot]])
            qx.append(pool[pick[self.k_shot:]])
            sy += [new_label] * self.k_shot
            qy += [new_label] * self.n_query
        return torch.cat(sx), torch.tensor(sy), torch.cat(qx), torch.tensor(qy)


class ProtoNet(L.LightningModule):
    def __init__(self, dim=32, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 16, dim))

    def episode(self, batch):
        sx, sy, qx, qy = batch
        n_way = int(sy.max()) + 1
        z = self.encoder(torch.cat([sx, qx]))
        zs, zq = z[: len(sx)], z[len(sx):]
        protos = torch.stack([zs[sy == c].mean(0) for c in range(n_way)])
        dists = torch.cdist(zq, protos).pow(2)
        return dists, qy

    def training_step(self, batch, batch_idx):
        dists, qy = self.episode(batch)
        loss = F.nll_loss(F.softmax(-dists, dim=1), qy)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        dists, qy = self.episode(batch)
        self.log("val_loss", F.cross_entropy(-dists, qy))
        self.log("val_acc", (dists.argmin(1) == qy).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(41)
    X, y = load_digits(return_X_y=True)
    x = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    train = EpisodeDataset(x, y, range(7), n_way=5, k_shot=5, n_query=10, n_episodes=60, seed=1, fixed=False)
    val = EpisodeDataset(x, y, range(7, 10), n_way=3, k_shot=5, n_query=15, n_episodes=20, seed=2, fixed=True)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ProtoNet(), DataLoader(train, batch_size=None, shuffle=True), DataLoader(val, batch_size=None))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_ce={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
