"""Bug: a small T5-style encoder-decoder (nn.Transformer, batch_first) that learns to sort a string of digits,
HuggingFace style: the tokenizer is a hand-built digit vocabulary with pad/eos, batches are dicts with
`input_ids`/`attention_mask`/`labels` (-100 on padding) and the model builds `decoder_input_ids` by shifting the
labels right inside `forward` and returns the loss. The optimizer is AdamW with parameter groups (no weight decay
on biases and LayerNorms) and a hand-ported `get_linear_schedule_with_warmup` as a per-step LambdaLR. In the port
the decay branch was written `max(0, (total - step) // (total - warmup))` - floor division of two ints - so the
multiplier is 1 exactly at the end of warm-up and 0 ever after: the model trains for the 10 % warm-up steps and
then sits at lr 0 for the remaining 90 % while the run looks normal (the loss just stops moving). Symptom: val
token accuracy 0.69 vs 1.00 with true division; final val loss 0.885 vs 0.007."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout19"
PAD, EOS, START = 0, 1, 2  # digits are 3..12


class DigitTokenizer:
    def encode(self, s):
        return [int(c) + 3 for c in s] + [EOS]

    def decode(self, ids):
        return "".join(str(i - 3) for i in ids if i >= 3)


class SortDataset(Dataset):
    def __init__(self, n, seed, tok):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(6, 13, (1,), generator=g))
            digits = "".join(str(d) for d in torch.randint(0, 10, (length,), generator=g).tolist())
            self.items.append((tok.encode(digits), tok.encode("".join(sorted(digits)))))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    S = max(len(s) for s, _ in batch)
    T = max(len(t) for _, t in batch)
    input_ids = torch.full((len(batch), S), PAD)
    labels = torch.full((len(batch), T), -100)
    for i, (s, t) in enumerate(batch):
        input_ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(t)] = torch.tensor(t)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels}


def shift_tokens_right(labels, start_id):
    dec = labels.new_full(labels.shape, PAD)
    dec[:, 1:] = labels[:, :-1]
    dec[:, 0] = start_id
    return dec.masked_fill(dec == -100, PAD)


class Seq2SeqSorter(nn.Module):
    def __init__(self, vocab=13, d=64):
        super().__init__()
        self.shared = nn.Embedding(vocab, d, padding_idx=PAD)
        self.pos = nn.Embedding(16, d)
        self.transformer = nn.Transformer(d, 4, 2, 2, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.lm_head = nn.Linear(d, vocab)

    def embed(self, ids):
        return self.shared(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, input_ids, attention_mask, labels):
        dec = shift_tokens_right(labels, START)
        causal = nn.Transformer.generate_square_subsequent_mask(dec.shape[1], dtype=torch.bool)
        h = self.transformer(self.embed(input_ids), self.embed(dec), tgt_mask=causal,
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0,
                             tgt_is_causal=True)
        logits = self.lm_head(h)
        return {"loss": F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100), "logits": logits}


class LitSorter(L.LightningModule):
    def __init__(self, lr=2e-3, warmup_ratio=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = Seq2SeqSorter()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        mask = batch["labels"] != -100
        acc = (out["logits"].argmax(-1)[mask] == batch["labels"][mask]).float().mean()
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", acc)

    def configure_optimizers(self):
        no_decay = ("bias", "norm")
        groups = [
            {"params": [p for n, p in self.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": 0.01},
            {"params": [p for n, p in self.named_parameters() if any(k in n for k in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(self.hparams.warmup_ratio * total)

        def lr_lambda(step):
            if step < warmup:
                return step / max(1, warmup)
            return max(0, (total - step) // (total - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(4242)
    tok = DigitTokenizer()
    train_dl = DataLoader(SortDataset(4000, 1, tok), batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(SortDataset(500, 2, tok), batch_size=250, collate_fn=collate)
    lit = LitSorter()
    trainer = L.Trainer(max_epochs=6, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_sorter"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_token_acc={m['val_token_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
