"""Bug: a small GPT (learned absolute positions, causal `nn.TransformerEncoder` with a square subsequent mask) is
instruction-tuned on a string-reversal task: `<bos> x1..xn <sep> xn..x1 <eos>` over 16 letters, with the prompt
positions masked out of the loss (-100) so only the answer is scored. A LightningDataModule builds both splits from
a `ReversalTask` dataset class; AdamW with linear warm-up and cosine decay.

The dataset class has evaluation-sized defaults (`min_len=8, max_len=16`), meant for a later length-generalisation
test. `setup()` passes `min_len=2, max_len=8` for the training split but builds the validation split as
`ReversalTask(400, seed=1)`, silently falling back to the defaults. Validation sequences are up to 34 tokens, the
training ones at most 18, so the answers in validation sit at position embeddings that never received a gradient
and at lengths the model has never reversed. The training loss falls to almost zero while validation gets worse
than guessing a letter uniformly (ln 16 = 2.77). Symptom: val loss 6.35 with train loss 0.005; passing the same
lengths to the val split gives val loss 0.005."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout24"
PAD, BOS, SEP, EOS = 0, 1, 2, 3  # letters are 4..19
VOCAB, MAX_POS = 20, 48


class ReversalTask(Dataset):
    def __init__(self, n, seed, min_len=8, max_len=16):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for _ in range(n):
            k = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
            x = (torch.randint(0, 16, (k,), generator=g) + 4).tolist()
            ids = [BOS] + x + [SEP] + x[::-1] + [EOS]
            self.rows.append((ids, [-100] * (k + 2) + x[::-1] + [EOS]))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(rows):
    width = max(len(r[0]) for r in rows)
    ids, labels = torch.full((len(rows), width), PAD), torch.full((len(rows), width), -100)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)] = torch.tensor(x), torch.tensor(y)
    return {"input_ids": ids[:, :-1], "labels": labels[:, 1:]}


class ReversalData(L.LightningDataModule):
    def setup(self, stage=None):
        self.train_set = ReversalTask(3000, seed=0, min_len=2, max_len=8)
        self.val_set = ReversalTask(400, seed=1)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=64, shuffle=True, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=200, collate_fn=collate)


class TinyGPT(L.LightningModule):
    def __init__(self, d=64, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(MAX_POS, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        return self.head(self.ln(self.blocks(x, mask=mask, is_causal=True)))

    def _loss(self, batch):
        return F.cross_entropy(self(batch["input_ids"]).flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, 25

        def lr_lambda(s):
            return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(2405)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyGPT(), datamodule=ReversalData())
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
