"""Healthy: BART-style denoising pre-training (text infilling) of a small encoder-decoder written as `transformers`
does: the collator replaces one span of 1-3 tokens of each sentence by a single `<mask>` in `input_ids`, `labels`
are the whole original sentence followed by `</s>` (padding -100), and the model builds `decoder_input_ids =
shift_tokens_right(labels, pad, decoder_start_token_id=</s>)` itself, as `BartForConditionalGeneration` does when
given labels. Encoder and decoder are `nn.Transformer` (pre-LN) with a causal `tgt_mask` and padding masks; output
object with `.loss`/`.logits`; AdamW, linear warm-up + inverse square root decay per step. Most target tokens can be
copied from the encoder input, the masked span must be inferred from the Markov language (3 successors per word).
Reaches val token accuracy 0.853 (0.891 with 25 % more training)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"
PAD, BOS, EOS, MASK = 0, 1, 2, 3
WORDS = 40
VOCAB = 4 + WORDS


class NoisedSentences(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(13)
        table = torch.stack([torch.randperm(WORDS, generator=g)[:3] for _ in range(WORDS)])
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            s = [int(torch.randint(0, WORDS, (1,), generator=g))]
            for _ in range(int(torch.randint(7, 16, (1,), generator=g))):
                s.append(int(table[s[-1], int(torch.randint(0, 3, (1,), generator=g))]))
            sent = torch.tensor(s) + 4
            span = int(torch.randint(1, 4, (1,), generator=g))
            start = int(torch.randint(1, len(s) - span, (1,), generator=g))
            noised = torch.cat([torch.tensor([BOS]), sent[:start], torch.tensor([MASK]), sent[start + span:],
                                torch.tensor([EOS])])
            self.items.append((noised, torch.cat([sent, torch.tensor([EOS])])))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    src, tgt = zip(*items)
    input_ids = pad_sequence(src, batch_first=True, padding_value=PAD)
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(),
            "labels": pad_sequence(tgt, batch_first=True, padding_value=-100)}


def shift_tokens_right(labels, pad_token_id, decoder_start_token_id):
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


@dataclass
class BartConfig:
    vocab_size: int = VOCAB
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.1
    max_position_embeddings: int = 24
    pad_token_id: int = PAD
    decoder_start_token_id: int = EOS
    init_std: float = 0.02


@dataclass
class Seq2SeqLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class BartForConditionalGeneration(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.enc_pos = nn.Embedding(config.max_position_embeddings, config.d_model)
        self.dec_pos = nn.Embedding(config.max_position_embeddings, config.d_model)
        self.transformer = nn.Transformer(config.d_model, config.heads, config.layers, config.layers, config.ffn_dim,
                                          config.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.shared.weight

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)
        s, t = input_ids.shape[1], decoder_input_ids.shape[1]
        src = self.shared(input_ids) + self.enc_pos(torch.arange(s, device=input_ids.device))
        tgt = self.shared(decoder_input_ids) + self.dec_pos(torch.arange(t, device=input_ids.device))
        src_pad = None if attention_mask is None else attention_mask == 0
        h = self.transformer(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(t, device=src.device),
                             src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad,
                             tgt_key_padding_mask=decoder_input_ids == self.config.pad_token_id, tgt_is_causal=True)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.config.vocab_size), labels.reshape(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits)


class LitBart(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.model = BartForConditionalGeneration(BartConfig())

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        keep = batch["labels"] != -100
        acc = (out.logits.argmax(-1)[keep] == batch["labels"][keep]).float().mean()
        self.log_dict({"val_loss": out.loss, "val_token_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98), weight_decay=0.01)
        w = self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, (w / (s + 1)) ** 0.5))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5115)
    train = DataLoader(NoisedSentences(1920, 0), batch_size=48, shuffle=True, collate_fn=collate)
    val = DataLoader(NoisedSentences(300, 1), batch_size=300, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, gradient_clip_val=1.0, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitBart(), train, val)
    print(f"val_token_acc={float(trainer.callback_metrics['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
