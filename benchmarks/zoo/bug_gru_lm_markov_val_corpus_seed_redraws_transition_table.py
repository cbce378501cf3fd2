"""Bug: a GRU language model (tied input/output embeddings, dict batches, Adam + ReduceLROnPlateau on val loss) on
synthetic "text" from a sparse 32-symbol Markov source. The data module has one helper,
`markov_corpus(n_seqs, seed)`, and calls it with seed 0 for train and seed 1 for validation "so that validation gets
different sequences". But the helper draws the transition table from the same seed as the sequences, so the
validation corpus comes from a different language: almost every bigram it contains is impossible under the training
source. Training loss falls to the source's entropy rate while validation loss climbs above the uniform baseline.
Symptom: val loss 6.54 (uniform baseline ln 32 = 3.47, train loss 1.14) vs val loss 1.08 (train 1.14) when the
table is drawn once and only the sequences use the split's seed."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout12"

VOCAB = 32
SEQ_LEN = 40


def markov_corpus(n_seqs, seed, branching=3):
    g = torch.Generator().manual_seed(seed)
    table = torch.zeros(VOCAB, VOCAB)
    for s in range(VOCAB):
        succ = torch.randperm(VOCAB, generator=g)[:branching]
        table[s, succ] = torch.rand(branching, generator=g) + 0.3
    table /= table.sum(1, keepdim=True)
    seqs = torch.empty(n_seqs, SEQ_LEN, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, VOCAB, (n_seqs,), generator=g)
    for t in range(1, SEQ_LEN):
        seqs[:, t] = torch.multinomial(table[seqs[:, t - 1]], 1, generator=g).squeeze(1)
    return seqs


class NextTokenDataset(Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        s = self.seqs[i]
        return {"input_ids": s[:-1], "target_ids": s[1:]}


class MarkovText(L.LightningDataModule):
    def __init__(self, n_train=3000, n_val=500, batch_size=64):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage=None):
        self.train_set = NextTokenDataset(markov_corpus(self.hparams.n_train, seed=0))
        self.val_set = NextTokenDataset(markov_corpus(self.hparams.n_val, seed=1))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=250)


class GRULanguageModel(L.LightningModule):
    def __init__(self, d=96, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.gru = nn.GRU(d, d, num_layers=2, batch_first=True, dropout=0.1)
        self.drop = nn.Dropout(0.1)

    def forward(self, input_ids):
        h, _ = self.gru(self.drop(self.embed(input_ids)))
        return self.drop(h) @ self.embed.weight.T

    def _loss(self, batch):
        logits = self(batch["input_ids"])
        return F.cross_entropy(logits.reshape(-1, VOCAB), batch["target_ids"].reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(32)
    dm = MarkovText()
    model = GRULanguageModel()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM uniform_baseline={math.log(VOCAB):.3f}")
    print(f"SYMPTOM train_loss={float(m['train_loss_epoch']):.3f}")
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
