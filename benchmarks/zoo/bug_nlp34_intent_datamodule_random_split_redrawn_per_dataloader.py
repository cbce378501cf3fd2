"""Bug: intent classifier (token embedding bag + MLP over HF-style dict batches `input_ids`/`attention_mask`/
`labels`, output object with `.logits`) on 600 crowd-labelled utterances, about 20% of whose labels are noisy.
The LightningDataModule does its 80/20 `random_split` lazily inside `train_dataloader()` and again inside
`val_dataloader()`, each call drawing a fresh permutation from the global RNG. The two draws are independent, so
about 80% of the "validation" utterances are also in the training split: the memorised training labels, noise
included, are then scored as validation. Training looks fine and validation looks excellent. Measured: val
accuracy 0.96 (loss 0.19) against 0.60 (loss 2.69) when one seeded split is made once in `setup()` and shared."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout34"
VOCAB, N_INTENTS, LEN = 200, 5, 12


class Utterances(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, N_INTENTS, (n,), generator=g)
        keyword = self.labels[:, None] * 10 + torch.randint(0, 10, (n, LEN), generator=g)
        filler = torch.randint(50, VOCAB, (n, LEN), generator=g)
        self.ids = torch.where(torch.rand(n, LEN, generator=g) < 0.15, keyword, filler)
        noisy = torch.rand(n, generator=g) < 0.2
        self.labels[noisy] = torch.randint(0, N_INTENTS, (int(noisy.sum()),), generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LEN, dtype=torch.long),
                "labels": self.labels[i]}


class IntentData(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        self.full = Utterances(600, seed=3403)

    def train_dataloader(self):
        train, _ = random_split(self.full, [0.8, 0.2])
        return DataLoader(train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        _, val = random_split(self.full, [0.8, 0.2])
        return DataLoader(val, batch_size=120)


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


class BagOfWordsIntent(L.LightningModule):
    def __init__(self, d=128, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, N_INTENTS))

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return ClassifierOutput(self.mlp(pooled))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3403)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BagOfWordsIntent(), datamodule=IntentData())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
