"""Bug: spoken-command recognition (12 commands) on synthetic log-mel features with a Listen-Attend-Spell style
pyramidal GRU listener. The GRUs are time-major (PyTorch's default `batch_first=False`, as in the tutorial the code
came from), and between the two layers adjacent frames are stacked to halve the frame rate. The stacking line was
copied from a batch-first implementation: `h.reshape(T // 2, B, 2 * H)` on a (T, B, H) tensor does not pair frames
2t and 2t+1 of one utterance; it concatenates frame t of utterance 2b with frame t of utterance 2b+1 (and
second-half rows come from the next time step). Each clip's prediction depends on which clips share its batch.
Symptom: val acc 0.07 (chance 0.08) vs 1.00 with `h.transpose(0, 1).reshape(B, T // 2, 2 * H).transpose(0, 1)`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout15"
N_MELS = 32
FRAMES = 64
COMMANDS = ["go", "stop", "left", "right", "up", "down", "yes", "no", "on", "off", "play", "pause"]


def synth_clips(n, seed):
    """Each command is a sequence of phone-like spectral prototypes with random durations, shift and noise."""
    g = torch.Generator().manual_seed(0)
    phones = torch.randn(20, N_MELS, generator=g)
    recipes = [torch.randint(0, 20, (4,), generator=g) for _ in COMMANDS]
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, FRAMES, N_MELS)
    y = torch.randint(0, len(COMMANDS), (n,), generator=g)
    for i in range(n):
        t = int(torch.randint(0, 12, (1,), generator=g))
        for p in recipes[int(y[i])]:
            d = int(torch.randint(6, 12, (1,), generator=g))
            x[i, t:t + d] += phones[p] * float(0.7 + 0.6 * torch.rand(1, generator=g))
            t += d
        x[i] += 0.6 * torch.randn(FRAMES, N_MELS, generator=g)
    return x, y


class PyramidalListener(L.LightningModule):
    def __init__(self, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.norm = nn.LayerNorm(N_MELS)
        self.gru1 = nn.GRU(N_MELS, hidden)                       # time-major
        self.gru2 = nn.GRU(2 * hidden, hidden)
        self.attn = nn.Linear(hidden, 1)
        self.head = nn.Linear(hidden, len(COMMANDS))

    def forward(self, feats):
        x = self.norm(feats).transpose(0, 1)                    # (T, B, mels)
        h, _ = self.gru1(x)
        T, B, H = h.shape
        h = h.reshape(T // 2, B, 2 * H)                          # stack adjacent frames
        h, _ = self.gru2(h)
        w = torch.softmax(self.attn(h), dim=0)                   # attention pooling over time
        return self.head((w * h).sum(0))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(99)
    xtr, ytr = synth_clips(1500, 1)
    xva, yva = synth_clips(300, 2)
    model = PyramidalListener()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="spoken_commands_plistener"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=100))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
