"""Bug: BERT-style masked language model on synthetic "log line" token sequences (arithmetic runs of ids with a
per-line stride, so a masked token is recoverable from its neighbours), HF-style dict batches
`input_ids`/`attention_mask`/`labels` with -100 on unmasked positions and the loss computed inside the model.
The training collator takes `mask_token_id` from the project's vocabulary ([MASK] = 3), but the validation collator
was copied from a notebook written against `bert-base-uncased` and hard-codes `mask_token_id=103` - in this
vocabulary 103 is an ordinary word id. At validation every "masked" position therefore shows a real but wrong token
that the model has never seen used as a mask; training is unaffected, validation measures a different input
distribution. Symptom: val masked-token loss 2.74 / acc 0.24 vs 1.28 / 0.58 with the fix (train loss 1.39 in both)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout17"
PAD, CLS, SEP, MASK = 0, 1, 2, 3
N_WORDS, OFFSET, SEQ = 120, 4, 20
VOCAB = OFFSET + N_WORDS


def make_lines(n, g):
    start = torch.randint(0, N_WORDS, (n, 1), generator=g)
    stride = torch.randint(1, 6, (n, 1), generator=g)
    lengths = torch.randint(10, SEQ - 1, (n,), generator=g)
    ids = (start + stride * torch.arange(SEQ - 2)) % N_WORDS + OFFSET
    lines = []
    for row, n_tok in zip(ids, lengths):
        lines.append([CLS] + row[:n_tok].tolist() + [SEP])
    return lines


class Lines(Dataset):
    def __init__(self, lines):
        self.lines = lines

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]


class MLMCollator:
    def __init__(self, mask_token_id, mlm_probability=0.15, seed=None):
        self.mask_token_id = mask_token_id
        self.p = mlm_probability
        self.g = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, lines):
        width = max(len(x) for x in lines)
        ids = torch.full((len(lines), width), PAD)
        for i, x in enumerate(lines):
            ids[i, : len(x)] = torch.tensor(x)
        attention_mask = (ids != PAD).long()
        special = (ids == PAD) | (ids == CLS) | (ids == SEP)
        chosen = (torch.rand(ids.shape, generator=self.g) < self.p) & ~special
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        input_ids = ids.masked_fill(chosen, self.mask_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class TinyBertForMaskedLM(nn.Module):
    def __init__(self, vocab=VOCAB, d=96, layers=2, heads=4):
        super().__init__()
        self.tok = nn.Embedding(vocab, d, padding_idx=PAD)
        self.pos = nn.Embedding(SEQ, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab)

    def forward(self, input_ids, attention_mask, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.tok(input_ids) + self.pos(pos)
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        logits = self.lm_head(self.norm(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class MLMModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TinyBertForMaskedLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"], prog_bar=True)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        m = batch["labels"] != -100
        acc = (out["logits"].argmax(-1)[m] == batch["labels"][m]).float().mean()
        self.log("val_loss", out["loss"], prog_bar=True)
        self.log("val_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)


def main():
    L.seed_everything(1703)
    g = torch.Generator().manual_seed(1703)
    train_lines, val_lines = make_lines(3000, g), make_lines(500, g)
    train_dl = DataLoader(Lines(train_lines), batch_size=64, shuffle=True,
                          collate_fn=MLMCollator(mask_token_id=MASK))
    # evaluation collator from the bert-base-uncased notebook: fixed seed for a stable val set
    val_dl = DataLoader(Lines(val_lines), batch_size=128, collate_fn=MLMCollator(mask_token_id=103, seed=0))
    module = MLMModule()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="mlm_val_collator"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(module, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
