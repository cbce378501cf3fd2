"""Bird-call species classifier: a 1-D CNN on short synthetic field clips (12 species, each a frequency-swept
call at a species-specific pitch and sweep, random onset, loudness, background hum and noise; about 10 % of the
clips carry a wrong species tag, as volunteer annotations do), cross-validated with a hand-written 5-fold split.

Bug: the fold code shuffles the clip ids once (`order = perm(n)`), takes fold k of the shuffled ids as validation,
and builds the training ids as `order[~np.isin(np.arange(n), val_ids)]`: the mask is computed on clip *ids*
but applied to *positions* of the shuffled array. It yields the right number of training clips, none of the code
complains, but it is a random 80 % of all clips - and so about 80 % of the validation clips are also in training.
The CNN memorises them (wrong tags included) and the fold's score looks much better than the model is.
Measured symptom: fold-0 val acc 0.88 (77 % of the val clips are in training; on those 1.00, on the rest 0.48)
vs 0.47 with the fix
(`train_ids = np.setdiff1d(order, val_ids)`)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout11"
N_SPECIES = 12
CLIP = 256


def make_clips(n, seed):
    g = torch.Generator().manual_seed(seed)
    species = torch.randint(0, N_SPECIES, (n,), generator=g)
    base = 0.05 + 0.02 * (species % 6).float()                   # cycles per sample
    sweep = torch.where(species < 6, 1.0, -1.0) * 0.02           # up- or down-sweep
    base = base * (1 + 0.04 * torch.randn(n, generator=g))       # individual birds differ
    t = torch.arange(CLIP).float()
    onset = torch.randint(0, CLIP // 2, (n,), generator=g).float()
    dur = 60 + torch.randint(0, 60, (n,), generator=g).float()
    rel = (t[None] - onset[:, None]) / dur[:, None]
    env = torch.exp(-((rel - 0.5) ** 2) / 0.05) * ((rel > 0) & (rel < 1)).float()
    freq = base[:, None] + sweep[:, None] * rel.clamp(0, 1)
    phase = 2 * torch.pi * torch.cumsum(freq, dim=1)
    amp = 0.3 + torch.rand(n, 1, generator=g)
    hum = 0.3 * torch.sin(2 * torch.pi * 0.01 * t[None] + torch.rand(n, 1, generator=g) * 6.28)
    x = amp * env * torch.sin(phase) + hum + 0.35 * torch.randn(n, CLIP, generator=g)
    wrong = torch.rand(n, generator=g) < 0.10
    tags = torch.where(wrong, torch.randint(0, N_SPECIES, (n,), generator=g), species)
    return x.unsqueeze(1), tags


def fold_ids(n, k, n_folds=5, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    folds = np.array_split(order, n_folds)
    val_ids = folds[k]
    train_ids = order[~np.isin(np.arange(n), val_ids)]
    return train_ids, val_ids


class CallCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        def block(cin, cout):
            return nn.Sequential(nn.Conv1d(cin, cout, 7, padding=3), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(2))
        self.features = nn.Sequential(block(1, 32), block(32, 64), block(64, 64), block(64, 128))
        self.head = nn.Linear(128, N_SPECIES)

    def forward(self, x):
        return self.head(self.features(x).amax(dim=2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(1107)
    x, y = make_clips(900, seed=11)
    x = (x - x.mean()) / x.std()
    train_ids, val_ids = fold_ids(len(y), k=0)
    tr = TensorDataset(x[train_ids], y[train_ids])
    va = TensorDataset(x[val_ids], y[val_ids])
    model = CallCNN()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="birdcall"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=128))
    model.eval()
    with torch.no_grad():
        pred = model(x[val_ids]).argmax(1)
    hit = (pred == y[val_ids]).float()
    seen = torch.from_numpy(np.isin(val_ids, train_ids))
    print(f"SYMPTOM val_acc={hit.mean():.3f} val_in_train={seen.float().mean():.2f} "
          f"acc_seen={hit[seen].mean() if seen.any() else float('nan'):.3f} "
          f"acc_unseen={hit[~seen].mean() if (~seen).any() else float('nan'):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
