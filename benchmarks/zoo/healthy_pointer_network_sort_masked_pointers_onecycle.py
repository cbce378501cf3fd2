"""Healthy: a Pointer Network (Vinyals et al. 2015) learns to sort: the input is 5-10 distinct numbers (tokens 0-99),
the output is the sequence of input *positions* in ascending order of value. A packed BiGRU encoder, a GRU decoder fed
the embedding of the element it pointed at last (teacher forcing with the gold pointer), additive attention whose
scores over the input positions *are* the output distribution. Padding positions and positions already pointed at are
masked with the dtype's minimum before the cross-entropy (not -inf: a decoding step past a short sequence has every
position masked, and its ignored row must stay finite); labels past the end are -100. Adam with `OneCycleLR` stepped
per batch, gradient clipping 2.0. Greedy decoding on held-out lists (the decoder masks the positions it has taken):
exact-match sort accuracy about 0.97."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
N_VALUES, MIN_N, MAX_N = 100, 5, 10


def make_lists(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(MIN_N, MAX_N + 1, (1,), generator=g))
        values = torch.randperm(N_VALUES, generator=g)[:k]
        out.append((values, values.argsort()))
    return out


def collate(items):
    B, T = len(items), max(len(v) for v, _ in items)
    values = torch.zeros(B, T, dtype=torch.long)
    pointers = torch.full((B, T), -100, dtype=torch.long)
    lengths = torch.tensor([len(v) for v, _ in items])
    for i, (v, p) in enumerate(items):
        values[i, :len(v)], pointers[i, :len(p)] = v, p
    return {"values": values, "lengths": lengths, "labels": pointers}


class PointerNet(L.LightningModule):
    def __init__(self, d=64, max_lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(N_VALUES, d)
        self.encoder = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.enc_proj = nn.Linear(2 * d, d)
        self.decoder = nn.GRUCell(d, d)
        self.start = nn.Parameter(torch.zeros(d))
        self.w_enc, self.w_dec = nn.Linear(d, d, bias=False), nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def encode(self, values, lengths):
        x = self.embed(values)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0], batch_first=True,
                                                total_length=values.size(1))
        enc = torch.tanh(self.enc_proj(h))
        valid = torch.arange(values.size(1))[None] < lengths[:, None]
        state = (enc * valid[..., None]).sum(1) / lengths[:, None]
        return x, enc, valid, state

    def forward(self, values, lengths, labels=None):
        """Pointer logits (B, T_out, T_in). With labels: teacher forcing, otherwise greedy."""
        x, enc, valid, state = self.encode(values, lengths)
        B, T = values.shape
        keys = self.w_enc(enc)
        taken = torch.zeros(B, T, dtype=torch.bool)
        inp = self.start.expand(B, -1)
        neg = torch.finfo(keys.dtype).min
        all_logits = []
        for t in range(T):
            state = self.decoder(inp, state)
            scores = self.v(torch.tanh(keys + self.w_dec(state)[:, None])).squeeze(-1)
            scores = scores.masked_fill(~valid | taken, neg)
            all_logits.append(scores)
            ptr = labels[:, t].clamp(min=0) if labels is not None else scores.argmax(-1)
            taken = taken | F.one_hot(ptr, T).bool()
            inp = x[torch.arange(B), ptr]
        return torch.stack(all_logits, dim=1)

    def _loss(self, logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(self(batch["values"], batch["lengths"], batch["labels"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        labels = batch["labels"]
        self.log("val_loss", self._loss(self(batch["values"], batch["lengths"], labels), labels))
        pred = self(batch["values"], batch["lengths"]).argmax(-1)
        exact = ((pred == labels) | (labels == -100)).all(dim=1)
        self.log("val_exact_sort", exact.float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.max_lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches,
                                                    pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(15)
    train, val = make_lists(6000, seed=1), make_lists(500, seed=2)
    model = PointerNet()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="pointer_sort"), log_every_n_steps=10,
                        gradient_clip_val=2.0)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=250, collate_fn=collate))
    print(f"SYMPTOM val_exact_sort={trainer.callback_metrics['val_exact_sort'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
