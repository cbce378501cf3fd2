"""Bug: machine-fault sound classification on log-mel spectrogram clips (40 bands x 96 frames). The faults are
short transients (a knock, a squeal, a rattle, a hiss burst; 4 frames long) somewhere in a long clip of machine hum,
so the user pools with "top-k frame attention": a 1-D CNN over time gives frame features, a linear scorer rates
every frame, and the clip embedding is the mean of the k=4 best-scored frames, picked with `scores.topk(k).indices`
and `gather`. Index selection is not differentiable, so the scorer never receives a gradient: it keeps its random
initial weights and keeps picking frames by a random criterion. Training still lowers the loss (the CNN learns from
whatever frames happen to be picked, and its receptive field sometimes reaches the event), so nothing looks broken.
Symptom: val acc 0.85 / val loss 0.26 vs 1.00 / 0.001 when the picked frames are weighted by the softmax of their
scores (which lets the gradient reach the scorer)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout18"
BANDS, FRAMES, EVENT = 40, 96, 4
FAULTS = ["normal", "knock", "squeal", "rattle", "hiss"]


def make_clips(n, g):
    bands = torch.arange(BANDS, dtype=torch.float32)
    hum = torch.exp(-((bands - 6) ** 2) / 8)  # low-frequency hum shared by every clip
    x = hum[None, :, None] * (2 + 0.5 * torch.randn(n, 1, 1, generator=g))
    x = x + 0.6 * torch.randn(n, BANDS, FRAMES, generator=g)
    y = torch.randint(len(FAULTS), (n,), generator=g)
    shapes = {1: torch.exp(-((bands - 12) ** 2) / 30),            # knock: broadband low-mid
              2: torch.exp(-((bands - 33) ** 2) / 2),             # squeal: narrow high band
              3: ((bands.long() % 4) == 0).float(),               # rattle: comb
              4: torch.sigmoid(bands - 25)}                        # hiss: high-pass
    for i in range(n):
        k = int(y[i])
        if k == 0:
            continue
        t0 = int(torch.randint(FRAMES - EVENT, (1,), generator=g))
        x[i, :, t0:t0 + EVENT] += 2.0 * shapes[k][:, None]
    return x, y


class FaultClassifier(L.LightningModule):
    def __init__(self, k=4, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.frames = nn.Sequential(
            nn.Conv1d(BANDS, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
        )
        self.scorer = nn.Linear(64, 1)
        self.head = nn.Linear(64, len(FAULTS))

    def forward(self, x):
        h = self.frames(x).transpose(1, 2)            # (B, T, 64)
        scores = self.scorer(h).squeeze(-1)           # (B, T)
        idx = scores.topk(self.hparams.k, dim=1).indices
        picked = h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        return self.head(picked.mean(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(31)
    g = torch.Generator().manual_seed(31)
    x_tr, y_tr = make_clips(2000, g)
    x_va, y_va = make_clips(500, g)
    mean, std = x_tr.mean(), x_tr.std()
    model = FaultClassifier()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="machine_sound"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset((x_tr - mean) / std, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset((x_va - mean) / std, y_va), batch_size=250))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
