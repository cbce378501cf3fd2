"""Healthy: a T5-style encoder-decoder for a toy translation task, written the way HuggingFace writes
`T5ForConditionalGeneration`: a config dataclass, one embedding shared by encoder, decoder and (scaled by
d_model**-0.5) the LM head, `_shift_right` with `decoder_start_token_id = pad_token_id = 0`, -100 in `labels`
replaced by the pad id in `decoder_input_ids`, the loss computed inside the model, dict batches with
`input_ids`/`attention_mask`/`labels`. Teacher forcing with a causal decoder mask. AdamW with an inverse-square-root
schedule after linear warm-up, stepped per step; `accumulate_grad_batches=2`. Data: "adjective noun" pairs
translated word by word through a fixed dictionary and reordered to "noun adjective" (as English -> French).
Measured: val token accuracy (teacher forced) 1.00 after 5 epochs; greedy exact match 0.99."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"
PAD, EOS = 0, 1
SRC_ADJ, SRC_NOUN = range(2, 12), range(12, 32)  # target words: 32-61
DICTIONARY = {w: 32 + (7 * (w - 2)) % 30 for w in range(2, 32)}


@dataclass
class T5Config:
    vocab_size: int = 62
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 128
    num_layers: int = 2
    dropout_rate: float = 0.1
    pad_token_id: int = PAD
    decoder_start_token_id: int = PAD
    max_len: int = 16


@dataclass
class Seq2SeqLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class PhrasePairs(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            k = int(torch.randint(2, 6, (1,), generator=g))
            src, tgt = [], []
            for _ in range(k):
                adj = SRC_ADJ[int(torch.randint(0, 10, (1,), generator=g))]
                noun = SRC_NOUN[int(torch.randint(0, 20, (1,), generator=g))]
                src += [adj, noun]
                tgt += [DICTIONARY[noun], DICTIONARY[adj]]
            self.items.append((torch.tensor(src + [EOS]), torch.tensor(tgt + [EOS])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([s for s, _ in items], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([t for _, t in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class T5ForConditionalGeneration(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.transformer = nn.Transformer(cfg.d_model, cfg.num_heads, cfg.num_layers, cfg.num_layers, cfg.d_ff,
                                          cfg.dropout_rate, batch_first=True, norm_first=True)
        nn.init.normal_(self.shared.weight, std=1.0)
        nn.init.normal_(self.pos.weight, std=0.5)

    def _shift_right(self, labels):
        shifted = labels.new_full(labels.shape, self.config.decoder_start_token_id)
        shifted[:, 1:] = labels[:, :-1].clone()
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def embed(self, ids):
        return self.shared(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = self._shift_right(labels)
        t = decoder_input_ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        h = self.transformer(self.embed(input_ids), self.embed(decoder_input_ids), tgt_mask=causal, tgt_is_causal=True,
                             src_key_padding_mask=attention_mask == 0, memory_key_padding_mask=attention_mask == 0)
        logits = (h * self.config.d_model ** -0.5) @ self.shared.weight.t()  # tied LM head, rescaled as in T5
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new_tokens):
        dec = input_ids.new_full((input_ids.shape[0], 1), self.config.decoder_start_token_id)
        for _ in range(max_new_tokens):
            logits = self(input_ids, attention_mask, decoder_input_ids=dec).logits
            dec = torch.cat([dec, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return dec[:, 1:]


class LitT5(L.LightningModule):
    def __init__(self, lr=2e-3, warmup_steps=60):
        super().__init__()
        self.save_hyperparameters()
        self.model = T5ForConditionalGeneration(T5Config())

    def forward(self, batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        loss = self(batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(batch)
        labels = batch["labels"]
        real = labels != -100
        self.log("val_loss", out.loss)
        self.log("val_token_acc", (out.logits.argmax(-1) == labels)[real].float().mean())
        gen = self.model.generate(batch["input_ids"], batch["attention_mask"], labels.shape[1])
        self.log("val_exact_match", ((gen == labels) | ~real).all(dim=1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, (w / (s + 1)) ** 0.5))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(7008)
    train = DataLoader(PhrasePairs(2000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(PhrasePairs(300, 1), batch_size=150, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accumulate_grad_batches=2, gradient_clip_val=1.0, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitT5(), train, val)
    m = trainer.callback_metrics
    print(f"val_token_acc={float(m['val_token_acc']):.3f} val_exact_match={float(m['val_exact_match']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
