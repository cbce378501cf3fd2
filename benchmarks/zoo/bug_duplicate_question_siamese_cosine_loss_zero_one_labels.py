"""Bug: a siamese duplicate-question detector (shared embedding + BiGRU + mean-pool encoder, dict batches with
`q1_ids`/`q2_ids`/`label`) trained with `nn.CosineEmbeddingLoss(margin=0.3)`. The pair file stores `is_duplicate`
as 0/1, the way every duplicate-question dataset ships it, and the label goes straight into the loss. But
CosineEmbeddingLoss expects +1/-1: a target of 0 matches neither branch and contributes exactly zero loss. Only the
duplicate pairs are ever pulled together, the non-duplicates are never pushed apart, and the encoder drifts towards
mapping every question to the same direction. No error or warning. Symptom: val ROC-AUC of the cosine score
0.66 (mean cosine of non-duplicates 1.00) vs 0.89 (non-duplicates 0.37) with `target = 2 * label - 1`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout11"
N_CONCEPTS, N_INTENTS, N_FILL, PAD = 120, 400, 80, 0
# token ids: [PAD] | two surface forms ("synonyms") per concept | filler words
FILL0 = 1 + 2 * N_CONCEPTS
VOCAB = FILL0 + N_FILL


def make_intents(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(N_CONCEPTS, generator=g)[:4] for _ in range(N_INTENTS)])


def phrase(concepts, g):
    words = 1 + 2 * concepts + torch.randint(0, 2, (len(concepts),), generator=g)
    fill = FILL0 + torch.randint(0, N_FILL, (4,), generator=g)
    q = torch.cat([words, fill])
    return q[torch.randperm(len(q), generator=g)]


def make_pairs(intents, intent_ids, n, seed):
    """Half duplicates (two phrasings of one intent), half hard negatives (another intent sharing 2 concepts)."""
    g = torch.Generator().manual_seed(seed)
    q1, q2, y = [], [], []
    for k in range(n):
        a = intents[intent_ids[int(torch.randint(0, len(intent_ids), (1,), generator=g))]]
        if k % 2 == 0:
            b, label = a, 1
        else:
            b = torch.cat([a[:2], torch.randperm(N_CONCEPTS, generator=g)[:2]])
            label = 0
        q1.append(phrase(a, g))
        q2.append(phrase(b, g))
        y.append(label)
    return torch.stack(q1), torch.stack(q2), torch.tensor(y)


class QuestionPairs(Dataset):
    def __init__(self, q1, q2, y):
        self.q1, self.q2, self.y = q1, q2, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"q1_ids": self.q1[i], "q2_ids": self.q2[i], "label": self.y[i]}


def roc_auc(score, label):
    order = score.argsort()
    ranks = torch.empty_like(order, dtype=torch.float)
    ranks[order] = torch.arange(1, len(score) + 1, dtype=torch.float)
    n_pos = label.sum()
    n_neg = len(label) - n_pos
    return ((ranks[label == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


class SiameseEncoder(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * d, d)
        self.loss_fn = nn.CosineEmbeddingLoss(margin=0.3)

    def encode(self, ids):
        h, _ = self.gru(self.embed(ids))
        return self.proj(h.mean(1))

    def training_step(self, batch, batch_idx):
        e1, e2 = self.encode(batch["q1_ids"]), self.encode(batch["q2_ids"])
        loss = self.loss_fn(e1, e2, batch["label"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        e1, e2 = self.encode(batch["q1_ids"]), self.encode(batch["q2_ids"])
        cos = F.cosine_similarity(e1, e2)
        self.log("val_loss", self.loss_fn(e1, e2, batch["label"]))
        self.log("val_auc", roc_auc(cos, batch["label"]), prog_bar=True)
        self.log("val_cos_nondup", cos[batch["label"] == 0].mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(97)
    intents = make_intents(5)
    perm = torch.randperm(N_INTENTS, generator=torch.Generator().manual_seed(6))
    train = DataLoader(QuestionPairs(*make_pairs(intents, perm[:320], 4000, 1)), batch_size=64, shuffle=True)
    val = DataLoader(QuestionPairs(*make_pairs(intents, perm[320:], 800, 2)), batch_size=800)
    model = SiameseEncoder()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="dup_questions"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val auc {m['val_auc'].item():.3f} mean cos of non-duplicates {m['val_cos_nondup'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
