"""Healthy: a BiGRU-CRF named-entity tagger (Lample et al. 2016) with BIO tags for multi-word PER and LOC entities.
The CRF is written by hand: learned start/end/transition scores, the sequence negative log-likelihood from the
forward algorithm (log-partition minus gold-path score, summed over a sentence's tokens and averaged over the batch -
so the loss starts near T * ln 5, not at ln 5 like a per-token cross-entropy), Viterbi decoding for the predictions.
Dict batches `input_ids`/`attention_mask`/`labels` (labels -100 on padding). Adam with gradient clipping at 5 (the
CRF NLL is a sum over tokens), `ReduceLROnPlateau` in mode "max" monitoring the entity-level span F1 computed from
the Viterbi paths at the end of each validation epoch. Final val span F1 about 0.98."""

from collections import Counter

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
FILLER = ("the a of and to was is for on with by that it as be has had after when while over under about news "
          "report today week meeting team plan deal people office council market visit trip").split()


def make_sentences(n, seed):
    g = torch.Generator().manual_seed(seed)

    def pick(seq):
        return seq[int(torch.randint(0, len(seq), (1,), generator=g))]

    def rand():
        return float(torch.rand(1, generator=g))

    first, last = [f"fn{i}" for i in range(300)], [f"ln{i}" for i in range(300)]
    place_head, place_tail = [f"pl{i}" for i in range(200)], ["city", "bay", "hills", "springs", "port"]
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
                words.append(pick(FILLER)), tags.append("O")
            if rand() < 0.5:
                if rand() < 0.6:
                    words.append(pick(["mr", "ms", "dr", "said"])), tags.append("O")
                span = [pick(first), pick(last)] if rand() < 0.7 else [pick(last)]
                words += span
                tags += ["B-PER"] + ["I-PER"] * (len(span) - 1)
            else:
                if rand() < 0.6:
                    words.append(pick(["in", "near", "from", "to"])), tags.append("O")
                span = [pick(place_head)] + ([pick(place_tail)] if rand() < 0.5 else [])
                words += span
                tags += ["B-LOC"] + ["I-LOC"] * (len(span) - 1)
        out.append((words, tags))
    return out


class Vocab:
    def __init__(self, sentences, min_freq=2):
        counts = Counter(w for words, _ in sentences for w in words)
        self.itos = ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_freq)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def encode(self, words, tags):
        return (torch.tensor([self.stoi.get(w, 1) for w in words]), torch.tensor([TAGS.index(t) for t in tags]))


def collate(items):
    T = max(len(ids) for ids, _ in items)
    out = {"input_ids": torch.zeros(len(items), T, dtype=torch.long),
           "attention_mask": torch.zeros(len(items), T, dtype=torch.long),
           "labels": torch.full((len(items), T), -100, dtype=torch.long)}
    for i, (ids, tags) in enumerate(items):
        out["input_ids"][i, :len(ids)], out["attention_mask"][i, :len(ids)], out["labels"][i, :len(ids)] = ids, 1, tags
    return out


class CRF(nn.Module):
    def __init__(self, n_tags):
        super().__init__()
        self.start = nn.Parameter(torch.empty(n_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(n_tags).uniform_(-0.1, 0.1))
        self.trans = nn.Parameter(torch.empty(n_tags, n_tags).uniform_(-0.1, 0.1))  # trans[i, j]: i -> j

    def nll(self, emissions, tags, mask):
        """emissions (B, T, K), tags (B, T) with any value on padding, mask (B, T) bool, first position real."""
        B, T, K = emissions.shape
        tags = tags.clamp(min=0)
        idx = torch.arange(B)
        score = self.start[tags[:, 0]] + emissions[idx, 0, tags[:, 0]]
        alpha = self.start + emissions[:, 0]
        for t in range(1, T):
            m = mask[:, t]
            step = self.trans[tags[:, t - 1], tags[:, t]] + emissions[idx, t, tags[:, t]]
            score = score + step * m
            nxt = torch.logsumexp(alpha[:, :, None] + self.trans[None] + emissions[:, t, None, :], dim=1)
            alpha = torch.where(m[:, None], nxt, alpha)
        last = tags[idx, mask.sum(1) - 1]
        score = score + self.end[last]
        log_z = torch.logsumexp(alpha + self.end, dim=1)
        return (log_z - score).mean()

    @torch.no_grad()
    def viterbi(self, emissions, mask):
        B, T, K = emissions.shape
        best = self.start + emissions[:, 0]
        back = []
        for t in range(1, T):
            cand = best[:, :, None] + self.trans[None]
            val, arg = cand.max(dim=1)
            m = mask[:, t, None]
            best = torch.where(m, val + emissions[:, t], best)
            back.append(torch.where(m, arg, torch.arange(K).expand(B, K)))
        best = best + self.end
        paths = [best.argmax(1)]
        for arg in reversed(back):
            paths.append(arg.gather(1, paths[-1][:, None]).squeeze(1))
        return torch.stack(paths[::-1], dim=1)


def spans(tag_ids):
    out, start, kind = set(), None, None
    for i, t in enumerate(list(tag_ids) + [0]):
        name = TAGS[t]
        if start is not None and not (name.startswith("I-") and name[2:] == kind):
            out.add((start, i, kind))
            start = None
        if name.startswith("B-"):
            start, kind = i, name[2:]
    return out


class BiGRUCRF(L.LightningModule):
    def __init__(self, vocab_size, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.3)
        self.emit = nn.Linear(2 * d, len(TAGS))
        self.crf = CRF(len(TAGS))
        self.counts = Counter()

    def emissions(self, input_ids):
        x = nn.utils.rnn.pack_padded_sequence(self.drop(self.embed(input_ids)), (input_ids != 0).sum(1),
                                              batch_first=True, enforce_sorted=False)
        h, _ = nn.utils.rnn.pad_packed_sequence(self.gru(x)[0], batch_first=True, total_length=input_ids.size(1))
        return self.emit(self.drop(h))

    def training_step(self, batch, batch_idx):
        loss = self.crf.nll(self.emissions(batch["input_ids"]), batch["labels"], batch["attention_mask"].bool())
        self.log("train_nll", loss)
        return loss

    def on_validation_epoch_start(self):
        self.counts = Counter()

    def validation_step(self, batch, batch_idx):
        mask = batch["attention_mask"].bool()
        em = self.emissions(batch["input_ids"])
        self.log("val_nll", self.crf.nll(em, batch["labels"], mask))
        pred = self.crf.viterbi(em, mask)
        for p, y, m in zip(pred, batch["labels"], mask):
            n = int(m.sum())
            ps, ys = spans(p[:n].tolist()), spans(y[:n].tolist())
            self.counts.update(tp=len(ps & ys), pred=len(ps), gold=len(ys))

    def on_validation_epoch_end(self):
        c = self.counts
        self.log("val_f1", 2 * c["tp"] / max(1, c["pred"] + c["gold"]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_f1", "interval": "epoch"}}


def main():
    L.seed_everything(9)
    train_s, val_s = make_sentences(2500, seed=1), make_sentences(500, seed=2)
    vocab = Vocab(train_s)
    train = [vocab.encode(*s) for s in train_s]
    val = [vocab.encode(*s) for s in val_s]
    model = BiGRUCRF(len(vocab.itos))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="bigru_crf"), log_every_n_steps=10,
                        gradient_clip_val=5.0)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=250, collate_fn=collate))
    print(f"SYMPTOM val_span_f1={trainer.callback_metrics['val_f1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
