"""Healthy: a TransformerEncoder classifies variable-length synthetic token sequences (padding id 0, seeded
torch.Generator): the label says whether token 3 occurs more often than token 4. Uses src_key_padding_mask and
masked mean pooling; AdamW with linear warmup via LambdaLR stepped per batch."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
PAD, VOCAB, MAX_LEN = 0, 16, 24


class CountingDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        while len(self.items) < n:
            length = int(torch.randint(6, MAX_LEN + 1, (1,), generator=g))
            seq = torch.randint(1, VOCAB, (length,), generator=g)
            n3, n4 = int((seq == 3).sum()), int((seq == 4).sum())
            if n3 == n4:
                continue
            self.items.append((seq, int(n3 > n4)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    seqs, labels = zip(*batch)
    tokens = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    return tokens, torch.tensor(labels)


class TokenClassifier(L.LightningModule):
    def __init__(self, d_model=64, lr=1e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(1, MAX_LEN, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 2)

    def forward(self, tokens):
        pad = tokens == PAD
        h = self.embed(tokens) + self.pos[:, : tokens.shape[1]]
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))

    def training_step(self, batch, batch_idx):
        tokens, labels = batch
        loss = F.cross_entropy(self(tokens), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, labels = batch
        logits = self(tokens)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(-1) == labels).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warm = self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(11)
    train, val = CountingDataset(1536, seed=0), CountingDataset(256, seed=1)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TokenClassifier(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=128, collate_fn=collate))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
