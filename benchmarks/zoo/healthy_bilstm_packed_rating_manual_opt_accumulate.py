"""Healthy: review-rating classification (5 star classes) with a 2-layer bidirectional LSTM over packed
sequences (`pack_padded_sequence(..., enforce_sorted=False)`), final forward/backward hidden states concatenated,
trained with MANUAL optimization as in Lightning's docs: loss scaled by 1/accumulate, `manual_backward`, an
optimizer step every 2 batches with `self.clip_gradients`, OneCycleLR stepped after each optimizer step.
Data: reviews of 5-25 words; the rating is 3 + (#good - #bad words) clipped to 1..5, with "not" flipping the next
sentiment word. Measured: val acc 0.78 after 5 epochs (5 classes, chance about 0.3)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"
PAD, NOT, VOCAB = 0, 1, 90
GOOD, BAD = range(2, 12), range(12, 22)  # other words 22-89


class Reviews(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(5, 26, (1,), generator=g))
            words = torch.randint(22, VOCAB, (length,), generator=g)
            score = 0
            for pos in torch.randperm(length - 1, generator=g)[: int(torch.randint(0, 4, (1,), generator=g))]:
                good = bool(torch.rand(1, generator=g) < 0.5)
                words[pos + 1] = (GOOD if good else BAD)[int(torch.randint(0, 10, (1,), generator=g))]
                negated = bool(torch.rand(1, generator=g) < 0.25)
                if negated:
                    words[pos] = NOT
                score += (1 if good else -1) * (-1 if negated else 1)
            rating = min(5, max(1, 3 + score))
            self.items.append((words, rating - 1))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([w for w, _ in items], batch_first=True, padding_value=PAD)
    return ids, torch.tensor([len(w) for w, _ in items]), torch.tensor([y for _, y in items])


class BiLSTMRating(L.LightningModule):
    def __init__(self, dim=64, lr=4e-3, accumulate=2):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.lstm = nn.LSTM(dim, dim, num_layers=2, batch_first=True, bidirectional=True, dropout=0.2)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * dim, 5))

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(torch.cat([h[-2], h[-1]], dim=-1))

    def training_step(self, batch, batch_idx):
        ids, lengths, y = batch
        opt, sched = self.optimizers(), self.lr_schedulers()
        loss = F.cross_entropy(self(ids, lengths), y)
        self.manual_backward(loss / self.hparams.accumulate)
        if (batch_idx + 1) % self.hparams.accumulate == 0:
            self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
            sched.step()
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        ids, lengths, y = batch
        logits = self(ids, lengths)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        steps = int(self.trainer.estimated_stepping_batches) // self.hparams.accumulate  # batches, not steps
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=steps)
        return [opt], [sched]


def main():
    L.seed_everything(7016)
    train = DataLoader(Reviews(2800, 0), batch_size=32, shuffle=True, collate_fn=collate, drop_last=True)
    val = DataLoader(Reviews(400, 1), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BiLSTMRating(), train, val)
    print(f"val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
