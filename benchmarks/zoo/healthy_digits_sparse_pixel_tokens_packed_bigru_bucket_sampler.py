"""Healthy: scikit-learn digits read as a *sequence of tokens*: every non-zero pixel becomes one token
(position * 4 + intensity bucket), in raster order, so images become variable-length sequences (20-42 tokens).
A BiGRU classifier runs over `pack_padded_sequence(..., enforce_sorted=False)` and concatenates the final forward
and backward states. Batches come from a length-bucketing batch sampler (similar lengths together, batch order
shuffled every epoch), batches of 32, heavy dropout (0.3 on embeddings, 0.4 before the head), Adam with
cosine annealing per epoch and gradient clipping. Final val acc 0.94."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader, Sampler

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

VOCAB = 64 * 4 + 1       # 0 = padding


def to_tokens(img):
    """img: 64 ints in 0..16 -> token ids of the non-zero pixels in raster order."""
    pos = torch.nonzero(img > 0).squeeze(1)
    bucket = (img[pos] - 1) // 4
    return pos * 4 + bucket + 1


class BucketBatchSampler(Sampler):
    def __init__(self, lengths, batch_size, seed=0):
        self.lengths, self.batch_size, self.epoch, self.seed = lengths, batch_size, 0, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=g)
        # sort inside chunks of 8 batches, then shuffle the batches
        chunk = 8 * self.batch_size
        batches = []
        for start in range(0, len(order), chunk):
            idx = order[start:start + chunk]
            idx = idx[torch.argsort(self.lengths[idx], stable=True)]
            batches += [idx[i:i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield batches[b]

    def __len__(self):
        chunk = 8 * self.batch_size
        return sum(-(-min(chunk, len(self.lengths) - s) // self.batch_size) for s in range(0, len(self.lengths), chunk))


def collate(batch):
    seqs = [s for s, _ in batch]
    return {"input_ids": pad_sequence(seqs, batch_first=True, padding_value=0),
            "lengths": torch.tensor([len(s) for s in seqs]),
            "labels": torch.tensor([y for _, y in batch])}


class PixelTokenGRU(L.LightningModule):
    def __init__(self, d=64, hidden=80, lr=3e-3, epochs=14):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=0)
        self.emb_drop = nn.Dropout(0.3)
        self.gru = nn.GRU(d, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(0.4), nn.Linear(2 * hidden, 10))

    def forward(self, input_ids, lengths):
        packed = pack_padded_sequence(self.emb_drop(self.embed(input_ids)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.gru(packed)                      # h: (2, B, hidden), already in the batch's original order
        return self.head(torch.cat([h[0], h[1]], dim=-1))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["lengths"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["lengths"])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch["labels"]),
                       "val_acc": (logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(1797)
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    train = [(to_tokens(torch.tensor(img, dtype=torch.long)), int(t)) for img, t in zip(x_tr, y_tr)]
    val = [(to_tokens(torch.tensor(img, dtype=torch.long)), int(t)) for img, t in zip(x_va, y_va)]
    lengths = torch.tensor([len(s) for s, _ in train])

    epochs = 14
    model = PixelTokenGRU(epochs=epochs)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, gradient_clip_val=1.0,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_sampler=BucketBatchSampler(lengths, 32), collate_fn=collate),
                DataLoader(val, batch_size=150, collate_fn=collate))
    print(f"SYMPTOM seq_len_range={int(lengths.min())}-{int(lengths.max())}")
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
