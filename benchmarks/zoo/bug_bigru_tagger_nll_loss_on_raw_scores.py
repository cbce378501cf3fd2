"""Bug: a bidirectional GRU part-of-speech tagger (padded tuple batches, padding tags -100) whose final
`log_softmax` was removed in a refactor ("cross_entropy does that") while the training loss stayed
`F.nll_loss`: nll_loss on raw scores is just -score[target], unbounded below, so training raises the target
scores without limit instead of normalising them, and the loss dives negative.
Measured: val token acc 0.287 and val cross-entropy 1.879 vs 0.992 / 0.080 with log_softmax
(healthy_bigru_pos_tagger_log_softmax_nll)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input", "weight-growth"}
SPLIT = "heldout3"
WORDS, CLASSES, TAGS, MAX_LEN, PAD = 200, 5, 6, 20, 0


def sentences(n, seed):
    word_class = torch.randint(0, CLASSES, (WORDS,), generator=torch.Generator().manual_seed(8))
    tag_of = torch.randint(0, TAGS, (CLASSES, CLASSES + 1), generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, MAX_LEN + 1, (1,), generator=g))
        words = torch.randint(1, WORDS, (length,), generator=g)
        cls = word_class[words]
        nxt = torch.cat([cls[1:], torch.tensor([CLASSES])])  # CLASSES = end of sentence
        out.append((words, tag_of[cls, nxt]))
    return out


def collate(batch):
    ids = torch.full((len(batch), MAX_LEN), PAD, dtype=torch.long)
    tags = torch.full((len(batch), MAX_LEN), -100, dtype=torch.long)
    for i, (w, t) in enumerate(batch):
        ids[i, :len(w)], tags[i, :len(t)] = w, t
    return ids, tags


class Tagger(L.LightningModule):
    def __init__(self, dim=32, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(WORDS, dim, padding_idx=PAD)
        self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, TAGS)

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0])  # BUG: log_softmax dropped, but the loss is still nll_loss

    def training_step(self, batch, batch_idx):
        ids, tags = batch
        loss = F.nll_loss(self(ids).reshape(-1, TAGS), tags.reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, tags = batch
        scores = self(ids)
        real = tags != -100
        ce = F.cross_entropy(scores[real], tags[real])
        self.log_dict({"val_ce": ce, "val_token_acc": (scores[real].argmax(-1) == tags[real]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 6], gamma=0.3)]


def main():
    L.seed_everything(1999)
    train = DataLoader(sentences(1600, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(sentences(400, 1), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(), train, val)
    m = trainer.callback_metrics
    print(f"val_ce={float(m['val_ce']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
