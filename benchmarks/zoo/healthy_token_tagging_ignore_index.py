"""Healthy: sequence labelling (a tag per token) with a bidirectional GRU on synthetic variable-length token
sequences (seeded torch.Generator); padded positions carry the label -100 and cross_entropy(ignore_index=-100)
skips them. Tag = whether the token is larger than its predecessor (3 tags incl. "first token")."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
VOCAB, PAD = 30, 0


class Tagging(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            seq = torch.randint(1, VOCAB, (int(torch.randint(5, 20, (1,), generator=g)),), generator=g)
            tags = torch.cat([torch.tensor([2]), (seq[1:] > seq[:-1]).long()])
            self.items.append((seq, tags))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    seqs, tags = zip(*batch)
    return (nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD),
            nn.utils.rnn.pad_sequence(tags, batch_first=True, padding_value=-100))


class Tagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32, padding_idx=PAD)
        self.rnn = nn.GRU(32, 32, batch_first=True, bidirectional=True)
        self.out = nn.Linear(64, 3)

    def forward(self, tokens):
        h, _ = self.rnn(self.embed(tokens))
        return self.out(h)

    def training_step(self, batch, batch_idx):
        tokens, tags = batch
        logits = self(tokens)
        loss = F.cross_entropy(logits.reshape(-1, 3), tags.reshape(-1), ignore_index=-100)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, tags = batch
        self.log("val_loss", F.cross_entropy(self(tokens).reshape(-1, 3), tags.reshape(-1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(97)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(), DataLoader(Tagging(1200, 0), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(Tagging(200, 1), batch_size=100, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
