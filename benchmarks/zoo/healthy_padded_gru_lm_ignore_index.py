"""Healthy: a GRU language model over variable-length "sentences" from a small synthetic grammar (subject verb
object, with agreement: plural subjects take plural verbs), padded to the batch's longest sequence; padded target
positions carry -100 and `F.cross_entropy(..., ignore_index=-100)` skips them. Inputs are tokens[:-1], targets
tokens[1:]. AdamW, gradient clipping at 1.0; validation reports the next-token loss."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
PAD, BOS, EOS = 0, 1, 2
SING, PLUR = list(range(3, 8)), list(range(8, 13))  # subjects
VSING, VPLUR = list(range(13, 17)), list(range(17, 21))  # verbs
OBJ, ADJ = list(range(21, 29)), list(range(29, 33))
VOCAB = 33


class Sentences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]  # noqa: E731
        self.items = []
        for _ in range(n):
            plural = bool(torch.rand(1, generator=g) < 0.5)
            adjs = [pick(ADJ) for _ in range(int(torch.randint(0, 3, (1,), generator=g)))]
            sent = [BOS, *adjs, pick(PLUR if plural else SING), pick(VPLUR if plural else VSING), pick(OBJ), EOS]
            self.items.append(torch.tensor(sent))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(seqs):
    ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    targets = ids[:, 1:].masked_fill(ids[:, 1:] == PAD, -100)
    return ids[:, :-1], targets


class GrammarLM(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32, padding_idx=PAD)
        self.gru = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, VOCAB)

    def forward(self, tokens):
        h, _ = self.gru(self.embed(tokens))
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1), ignore_index=-100))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(2041)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GrammarLM(), DataLoader(Sentences(2000, 0), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(Sentences(300, 1), batch_size=150, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
