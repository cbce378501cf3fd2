"""Bug: bot-vs-human classifier on clickstream sessions. Each session is a variable-length sequence of events
(page-view, search, add-to-cart, ... : 8 types) with its unix timestamp. Humans browse with heavy-tailed gaps;
scripted clients fire at a steady period with little jitter, and their event types are only mildly different. A GRU
reads [event embedding, time feature] with right padding and the hidden state at each session's last real event
feeds the classifier. The collate builds the time column from the event log's `ts` field - the raw unix timestamp
(about 1.7e9 s) - instead of the gap since the previous event: a huge, almost constant input next to 16-d
embeddings around 1, which saturates the GRU gates; the timing regularity, the actual signal, is lost. Nothing
errors. Symptom: val acc 0.49 (chance) vs 0.77 when the feature is the gap as log1p(seconds) / 5."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout20"
N_TYPES, PAD = 8, 0

L.seed_everything(909)


def simulate_sessions(n, seed):
    g = torch.Generator().manual_seed(seed)
    sessions = []
    for _ in range(n):
        bot = int(torch.rand(1, generator=g) < 0.5)
        length = int(torch.randint(6, 40, (1,), generator=g))
        if bot:
            period = float(torch.exp(3.5 + 1.0 * torch.randn(1, generator=g)).clamp(3, 2000))
            gaps = period * (1 + 0.08 * torch.randn(length, generator=g)).clamp(min=0.5)
            probs = torch.tensor([3., 2, 2, 1, 1, 1, 1, 1])
        else:
            gaps = torch.exp(3.5 + 1.3 * torch.randn(length, generator=g)).clamp(max=4000)
            probs = torch.tensor([2., 2, 1, 1, 1, 1, 1, 2])
        gaps[0] = 0
        types = torch.multinomial(probs, length, replacement=True, generator=g) + 1   # 0 is padding
        start = 1.7e9 + 3e7 * float(torch.rand(1, generator=g))
        sessions.append((types, (start + gaps.round().cumsum(0)).double(), bot))
    return sessions


class Sessions(Dataset):
    def __init__(self, sessions):
        self.sessions = sessions

    def __len__(self):
        return len(self.sessions)

    def __getitem__(self, i):
        return self.sessions[i]


def collate(batch):
    lengths = torch.tensor([len(t) for t, _, _ in batch])
    types = torch.full((len(batch), int(lengths.max())), PAD, dtype=torch.long)
    times = torch.zeros(len(batch), int(lengths.max()))
    for i, (t, ts, _) in enumerate(batch):
        types[i, : len(t)] = t
        times[i, : len(t)] = ts.float()
    return types, times, lengths, torch.tensor([b for _, _, b in batch])


class SessionGRU(L.LightningModule):
    def __init__(self, emb=16, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(N_TYPES + 1, emb, padding_idx=PAD)
        self.gru = nn.GRU(emb + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, types, times, lengths):
        x = torch.cat([self.embed(types), times.unsqueeze(-1)], dim=-1)
        out, _ = self.gru(x)
        last = out[torch.arange(len(lengths)), lengths - 1]
        return self.head(last)

    def training_step(self, batch, batch_idx):
        types, times, lengths, y = batch
        loss = F.cross_entropy(self(types, times, lengths), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        types, times, lengths, y = batch
        logits = self(types, times, lengths)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    train = Sessions(simulate_sessions(1600, seed=1))
    val = Sessions(simulate_sessions(400, seed=2))
    model = SessionGRU()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_session_bot"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=128, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
