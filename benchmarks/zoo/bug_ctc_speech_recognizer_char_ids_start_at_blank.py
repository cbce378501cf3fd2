"""Bug: a character CTC recogniser (conv front-end + BiGRU) on synthetic filterbank features of spoken letter
sequences, `nn.CTCLoss()` with its default `blank=0` and an output layer of `len(vocab) + 1` classes "for the
blank". The character map is built as `{c: i for i, c in enumerate(sorted(set(text)))}`, without the +1 offset, so
the first character, the space, gets id 0: it is the blank. CTC treats every word boundary in the targets as "emit
nothing here", the model never learns to emit a space (greedy decoding deletes blanks) and the words run together;
the top class is never used. Nothing crashes and the loss falls. Symptom: val CER 0.24 (spaces lost, letters around
them merged) vs 0.06 when the map starts at 1."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout15"
LETTERS = "adeiknorst"
N_MELS = 24


def make_utterances(n, seed, protos):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        words = []
        for _ in range(int(torch.randint(2, 4, (1,), generator=g))):
            idx = torch.randint(len(LETTERS), (int(torch.randint(2, 5, (1,), generator=g)),), generator=g)
            words.append("".join(LETTERS[i] for i in idx))
        text = " ".join(words)
        frames = []
        for ch in text:
            k = int(torch.randint(3, 6, (1,), generator=g))
            frames.append(protos[ch].expand(k, -1))
        feats = torch.cat(frames)
        feats = feats + 0.4 * torch.randn(feats.shape, generator=g)
        feats = F.avg_pool1d(feats.T.unsqueeze(0), 3, 1, 1, count_include_pad=False)[0].T   # coarticulation
        out.append((feats, text))
    return out


def collate(batch, stoi):
    feats = nn.utils.rnn.pad_sequence([f for f, _ in batch], batch_first=True)
    feat_lens = torch.tensor([len(f) for f, _ in batch])
    targets = [torch.tensor([stoi[c] for c in t]) for _, t in batch]
    return {"input_values": feats, "input_lengths": feat_lens,
            "labels": torch.cat(targets), "label_lengths": torch.tensor([len(t) for t in targets]),
            "texts": [t for _, t in batch]}


class CTCRecognizer(L.LightningModule):
    def __init__(self, itos, hidden=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.itos = itos
        self.frontend = nn.Sequential(nn.Conv1d(N_MELS, hidden, 3, padding=1), nn.GELU())
        self.rnn = nn.GRU(hidden, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, len(itos) + 1)   # + 1 for the CTC blank
        self.ctc = nn.CTCLoss(zero_infinity=True)

    def forward(self, input_values, input_lengths):
        x = self.frontend(input_values.transpose(1, 2)).transpose(1, 2)
        x = nn.utils.rnn.pack_padded_sequence(x, input_lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(x)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True)
        return self.head(h).log_softmax(-1)

    def step(self, batch):
        logp = self(batch["input_values"], batch["input_lengths"])
        return self.ctc(logp.transpose(0, 1), batch["labels"], batch["input_lengths"], batch["label_lengths"]), logp

    def training_step(self, batch, batch_idx):
        loss, _ = self.step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logp = self.step(batch)
        self.log("val_loss", loss)
        self.log("val_cer", cer(self.greedy(logp, batch["input_lengths"]), batch["texts"]), prog_bar=True)

    def greedy(self, logp, lengths):
        out = []
        for row, n in zip(logp.argmax(-1), lengths):
            ids = torch.unique_consecutive(row[:n]).tolist()
            out.append("".join(self.itos[i] for i in ids if i != 0 and i < len(self.itos)))
        return out

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(hyps, refs):
    return sum(edit_distance(h, r) for h, r in zip(hyps, refs)) / sum(len(r) for r in refs)


if __name__ == "__main__":
    L.seed_everything(31)
    g = torch.Generator().manual_seed(0)
    protos = {ch: torch.randn(N_MELS, generator=g) for ch in LETTERS + " "}
    train_utts = make_utterances(800, 1, protos)
    val_utts = make_utterances(200, 2, protos)
    chars = sorted(set("".join(t for _, t in train_utts)))
    stoi = {c: i for i, c in enumerate(chars)}
    itos = chars
    train = DataLoader(train_utts, batch_size=32, shuffle=True, collate_fn=lambda b: collate(b, stoi))
    val = DataLoader(val_utts, batch_size=100, collate_fn=lambda b: collate(b, stoi))
    model = CTCRecognizer(itos)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=5.0,
                        logger=TensorBoardLogger("lightning_logs", name="ctc_chars"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    print(f"SYMPTOM val_cer={trainer.callback_metrics['val_cer'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
