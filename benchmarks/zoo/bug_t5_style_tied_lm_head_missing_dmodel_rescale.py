"""Bug: a T5-style encoder-decoder (HF `T5ForConditionalGeneration` layout: `T5LayerNorm`, unscaled attention
with the scale folded into the q init, bucketed relative attention bias, `_shift_right`, labels with -100, loss
inside the model) whose shared embedding is initialised with std 1.0 as T5 does and tied to the `lm_head`, but the
decoder output is NOT rescaled by `d_model ** -0.5` before the tied head (the line T5 runs when
`tie_word_embeddings` is set was dropped when porting). Unit-RMS decoder states times N(0, 1) embedding rows give
logits with a std of about sqrt(d_model) = 8 at initialisation: the first loss is far above ln(20) and training
starts from confidently wrong predictions. Task: reverse the source (6..10 tokens plus </s>) and map each token
through a fixed permutation. AdamW, linear warm-up and decay per step.
Measured: first-batch loss 33.8 vs 4.6 rescaled (ln 20 = 3.00); val teacher-forced token accuracy
0.82 vs 0.93 rescaled."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"initial-loss"}
SPLIT = "heldout8"

PAD, EOS, VOCAB = 0, 1, 20


@dataclass
class T5Config:
    vocab_size: int = VOCAB
    d_model: int = 64
    d_kv: int = 16
    d_ff: int = 128
    num_layers: int = 2
    num_heads: int = 4
    relative_attention_num_buckets: int = 32
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    pad_token_id: int = PAD
    decoder_start_token_id: int = PAD


@dataclass
class Seq2SeqLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class ReverseMapDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(VOCAB - 2, generator=torch.Generator().manual_seed(99)) + 2
        self.rows = []
        for _ in range(n):
            length = int(torch.randint(6, 11, (1,), generator=g))
            src = torch.randint(2, VOCAB, (length,), generator=g)
            tgt = torch.cat([perm[src.flip(0) - 2], torch.tensor([EOS])])
            self.rows.append((torch.cat([src, torch.tensor([EOS])]), tgt))  # inputs end with </s> too

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(rows):
    src = nn.utils.rnn.pad_sequence([r[0] for r in rows], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([r[1] for r in rows], batch_first=True, padding_value=-100)
    return {"input_ids": src, "attention_mask": (src != PAD).long(), "labels": labels}


class T5LayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


class T5Attention(nn.Module):
    def __init__(self, cfg, is_decoder, has_relative_attention_bias):
        super().__init__()
        self.is_decoder, self.n_heads, self.d_kv = is_decoder, cfg.num_heads, cfg.d_kv
        inner = cfg.num_heads * cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        self.num_buckets = cfg.relative_attention_num_buckets
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.num_buckets, cfg.num_heads)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def compute_bias(self, q_len, k_len):
        rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
        half = self.num_buckets // 2
        if self.is_decoder:
            bucket = (-rel).clamp(0, self.num_buckets - 1)
        else:
            bucket = rel.clamp(-half + 1, half - 1) + half
        bucket = bucket.to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(bucket).permute(2, 0, 1)[None]

    def forward(self, hidden, kv=None, mask=None, position_bias=None):
        b, t, _ = hidden.shape
        kv = hidden if kv is None else kv
        shape = lambda x: x.view(b, -1, self.n_heads, self.d_kv).transpose(1, 2)  # noqa: E731
        q, k, v = shape(self.q(hidden)), shape(self.k(kv)), shape(self.v(kv))
        scores = q @ k.transpose(-1, -2)
        if position_bias is None:
            position_bias = self.compute_bias(t, k.shape[2]) if hasattr(self, "relative_attention_bias") \
                else torch.zeros(1, self.n_heads, t, k.shape[2], device=scores.device)
            if mask is not None:
                position_bias = position_bias + mask
        w = self.dropout(F.softmax((scores + position_bias).float(), dim=-1).type_as(scores))
        return self.o((w @ v).transpose(1, 2).reshape(b, t, -1)), position_bias


class T5Block(nn.Module):
    def __init__(self, cfg, is_decoder, first):
        super().__init__()
        self.ln_self = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.self_attn = T5Attention(cfg, is_decoder, has_relative_attention_bias=first)
        if is_decoder:
            self.ln_cross = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
            self.cross_attn = T5Attention(cfg, True, has_relative_attention_bias=False)
        self.ln_ff = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, h, mask, bias, enc=None, enc_mask=None, enc_bias=None):
        a, bias = self.self_attn(self.ln_self(h), mask=mask, position_bias=bias)
        h = h + self.dropout(a)
        if enc is not None:
            a, enc_bias = self.cross_attn(self.ln_cross(h), kv=enc, mask=enc_mask, position_bias=enc_bias)
            h = h + self.dropout(a)
        h = h + self.dropout(self.wo(self.dropout(F.relu(self.wi(self.ln_ff(h))))))
        return h, bias, enc_bias


class T5Stack(nn.Module):
    def __init__(self, cfg, embed_tokens, is_decoder):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.block = nn.ModuleList(T5Block(cfg, is_decoder, first=i == 0) for i in range(cfg.num_layers))
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.dropout = nn.Dropout(cfg.dropout_rate)

    def forward(self, ids, mask, enc=None, enc_mask=None):
        h = self.dropout(self.embed_tokens(ids))
        bias = enc_bias = None
        for blk in self.block:
            h, bias, enc_bias = blk(h, mask, bias, enc, enc_mask, enc_bias)
        return self.dropout(self.final_layer_norm(h))


class T5ForConditionalGeneration(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config, self.model_dim = cfg, cfg.d_model
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = T5Stack(cfg, self.shared, is_decoder=False)
        self.decoder = T5Stack(cfg, self.shared, is_decoder=True)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.shared.weight  # tie_weights()

    def _init_weights(self, module):
        f, d, kv, h = self.config.initializer_factor, self.config.d_model, self.config.d_kv, self.config.num_heads
        if isinstance(module, nn.Embedding) and module is self.shared:
            module.weight.data.normal_(mean=0.0, std=f * 1.0)
        elif isinstance(module, T5Attention):
            module.q.weight.data.normal_(mean=0.0, std=f * (d * kv) ** -0.5)
            module.k.weight.data.normal_(mean=0.0, std=f * d ** -0.5)
            module.v.weight.data.normal_(mean=0.0, std=f * d ** -0.5)
            module.o.weight.data.normal_(mean=0.0, std=f * (h * kv) ** -0.5)
            if hasattr(module, "relative_attention_bias"):
                module.relative_attention_bias.weight.data.normal_(mean=0.0, std=f * d ** -0.5)
        elif isinstance(module, T5Block):
            module.wi.weight.data.normal_(mean=0.0, std=f * d ** -0.5)
            module.wo.weight.data.normal_(mean=0.0, std=f * self.config.d_ff ** -0.5)

    def _shift_right(self, labels):
        shifted = labels.new_full(labels.shape, self.config.decoder_start_token_id)
        shifted[:, 1:] = labels[:, :-1].clone()
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(self, input_ids, attention_mask, labels):
        neg = torch.finfo(torch.float32).min
        enc_mask = (1.0 - attention_mask[:, None, None, :].float()) * neg
        enc = self.encoder(input_ids, enc_mask)
        dec_ids = self._shift_right(labels)
        t = dec_ids.shape[1]
        causal = torch.triu(torch.full((t, t), neg, device=dec_ids.device), diagonal=1)[None, None]
        seq = self.decoder(dec_ids, causal, enc=enc, enc_mask=enc_mask)
        logits = self.lm_head(seq)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits)


class LitT5(L.LightningModule):
    def __init__(self, lr=5e-3, warmup_steps=60):
        super().__init__()
        self.save_hyperparameters()
        self.model = T5ForConditionalGeneration(T5Config())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        keep = batch["labels"] != -100
        acc = (out.logits.argmax(-1)[keep] == batch["labels"][keep]).float().mean()
        self.log_dict({"val_loss": out.loss, "val_token_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(8107)
    train = DataLoader(ReverseMapDataset(2000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ReverseMapDataset(256, 1), batch_size=128, collate_fn=collate)
    trainer = L.Trainer(max_epochs=12, gradient_clip_val=1.0, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitT5(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
