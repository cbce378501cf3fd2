"""Bug: token tagging with a bidirectional GRU where the tag sequences are padded with `pad_sequence`'s default
padding_value=0, which is a real tag ("not larger than the previous token"), while the loss keeps
`ignore_index=-100`: every padded position is trained as tag 0, so tag 0 dominates the labels (about a third of the
positions are padding) and the model learns to find the padding rather than the rule. Synthetic variable-length
sequences (5-19 tokens), Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout"
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
            nn.utils.rnn.pad_sequence(tags, batch_first=True))  # BUG: pads with tag 0, a real tag


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
    L.seed_everything(2051)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(), DataLoader(Tagging(1200, 0), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(Tagging(200, 1), batch_size=100, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
