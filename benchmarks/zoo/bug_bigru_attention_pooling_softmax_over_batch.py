"""Bug: a document topic classifier, embedding + BiGRU + additive attention pooling (Yang et al.-style: a small MLP
scores each position, the softmax of the scores weights the hidden states). The softmax is taken with `dim=0`, over
the batch, instead of `dim=1`, over the positions of each document: each document's pooling weights depend on the
other documents in the batch, and their scale on the batch size (32 in training, 500 in validation). Val acc 0.908
vs 0.966 with `dim=1` (same model and data). 6 topics, synthetic documents (topic words among shared words, variable
length, padding masked), AdamW, CosineAnnealingLR per epoch, gradient clipping."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout5"
TOPICS, TOPIC_WORDS, SHARED, PAD = 6, 25, 300, 0
VOCAB = 1 + SHARED + TOPICS * TOPIC_WORDS


class Documents(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            topic = int(torch.randint(0, TOPICS, (1,), generator=g))
            length = int(torch.randint(15, 60, (1,), generator=g))
            words = torch.randint(1, 1 + SHARED, (length,), generator=g)
            k = int(torch.randint(2, 5, (1,), generator=g))
            where = torch.randperm(length, generator=g)[:k]
            words[where] = 1 + SHARED + topic * TOPIC_WORDS + torch.randint(0, TOPIC_WORDS, (k,), generator=g)
            self.items.append((words, topic))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    words, topics = zip(*items)
    return pad_sequence(words, batch_first=True, padding_value=PAD), torch.tensor(topics)


class AttentionPoolClassifier(L.LightningModule):
    def __init__(self, dim=64, lr=3e-3, epochs=8):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.score = nn.Sequential(nn.Linear(2 * dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * dim, TOPICS))

    def forward(self, words):
        h, _ = self.gru(self.embed(words))
        scores = self.score(h).squeeze(-1).masked_fill(words == PAD, float("-inf"))
        weights = torch.softmax(scores, dim=0)
        return self.head((weights.unsqueeze(-1) * h).sum(1))

    def training_step(self, batch, batch_idx):
        words, y = batch
        loss = F.cross_entropy(self(words), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        words, y = batch
        logits = self(words)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(5110)
    train = DataLoader(Documents(1600, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(Documents(500, 1), batch_size=500, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, gradient_clip_val=1.0, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AttentionPoolClassifier(), train, val)
    print(f"val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
