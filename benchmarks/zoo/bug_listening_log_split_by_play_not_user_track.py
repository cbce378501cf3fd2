"""Bug: a matrix-factorisation recommender (user/track embeddings + biases, dict batches) that predicts how much of
a track a user listens to (a standardised completion score) from a play log. A user who likes a track plays it
again and again, so the log holds every (user, track) pair 1-5 times with nearly the same score. The author split the
*log rows* 80/20 with `random_split`, as for any table, instead of splitting the distinct (user, track) pairs:
about three quarters of the validation plays repeat a pair that is also in training, and the embeddings memorise
the pair. Validation RMSE looks much better than what the model does on pairs it has never seen.
Symptom: val RMSE 0.73 while RMSE on a fresh set of unseen pairs is 0.88; with the split made on distinct pairs the
val RMSE is 0.89 (honest, matching the unseen-pair RMSE 0.90)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout11"
N_USERS, N_TRACKS, RANK = 300, 400, 4


def make_world(seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(N_USERS, RANK, generator=g) / RANK ** 0.25
    v = torch.randn(N_TRACKS, RANK, generator=g) / RANK ** 0.25
    pop = 0.5 * torch.randn(N_TRACKS, generator=g)
    return u, v, pop, g


def pair_scores(world, users, tracks, g):
    u, v, pop, _ = world
    taste = (u[users] * v[tracks]).sum(1) + pop[tracks]
    return taste + 1.0 * torch.randn(len(users), generator=g)        # idiosyncratic (user, track) affinity


def make_play_log(world, n_pairs):
    g = world[3]
    pairs = torch.randperm(N_USERS * N_TRACKS, generator=g)
    log_pairs, fresh_pairs = pairs[:n_pairs], pairs[n_pairs:n_pairs + 1500]
    users, tracks = log_pairs // N_TRACKS, log_pairs % N_TRACKS
    score = pair_scores(world, users, tracks, g)
    plays = 1 + torch.poisson(torch.full((n_pairs,), 2.0), generator=g).clamp(max=4).long()
    rows_u, rows_t = users.repeat_interleave(plays), tracks.repeat_interleave(plays)
    rows_y = score.repeat_interleave(plays) + 0.1 * torch.randn(int(plays.sum()), generator=g)
    fu, ft = fresh_pairs // N_TRACKS, fresh_pairs % N_TRACKS
    fresh = (fu, ft, pair_scores(world, fu, ft, g))
    return (rows_u, rows_t, rows_y), fresh


class Plays(Dataset):
    def __init__(self, users, tracks, y, mean, std):
        self.users, self.tracks, self.y = users, tracks, (y - mean) / std

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"user": self.users[i], "track": self.tracks[i], "target": self.y[i]}


class MF(L.LightningModule):
    def __init__(self, dim=16, lr=3e-3, wd=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, dim)
        self.track = nn.Embedding(N_TRACKS, dim)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.track_bias = nn.Embedding(N_TRACKS, 1)
        for e in (self.user, self.track):
            nn.init.normal_(e.weight, std=0.1)
        for e in (self.user_bias, self.track_bias):
            nn.init.zeros_(e.weight)

    def forward(self, user, track):
        dot = (self.user(user) * self.track(track)).sum(-1)
        return dot + self.user_bias(user).squeeze(-1) + self.track_bias(track).squeeze(-1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch["user"], batch["track"]), batch["target"])
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch["user"], batch["track"]), batch["target"])
        self.log("val_mse", loss, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.wd)


def main():
    L.seed_everything(31)
    world = make_world(4)
    (u, t, y), (fu, ft, fy) = make_play_log(world, 14000)
    mean, std = y.mean(), y.std()
    full = Plays(u, t, y, mean, std)
    n_val = len(full) // 5
    train_set, val_set = random_split(full, [len(full) - n_val, n_val], generator=torch.Generator().manual_seed(0))
    train = DataLoader(train_set, batch_size=256, shuffle=True)
    val = DataLoader(val_set, batch_size=1024)
    model = MF()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="play_log_mf"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    model.eval()
    with torch.no_grad():
        fresh_rmse = F.mse_loss(model(fu, ft), (fy - mean) / std).sqrt().item()
    val_rmse = trainer.callback_metrics["val_mse"].sqrt().item()
    print(f"SYMPTOM val RMSE {val_rmse:.3f} unseen-pair RMSE {fresh_rmse:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
