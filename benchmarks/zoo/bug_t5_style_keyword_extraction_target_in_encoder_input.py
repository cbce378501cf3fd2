"""Bug: a T5-style keyword extractor whose preprocessing was ported from the decoder-only (GPT-style) fine-tuning
script of the same project, where a training example is "source [SEP] target </s>": `encode_example` still builds
`input_ids = src + [SEP] + tgt`, and `labels = tgt + [</s>]` as an encoder-decoder needs. The encoder therefore reads
the answer, in training and in validation alike, and the decoder learns to copy it from the cross-attention instead
of extracting keywords (and the 10 % of keywords the annotators skipped, which no honest model can predict, are
visible too). Otherwise the same script as healthy_t5_style_keyword_extraction_seq2seq (HF-style config, in-model
loss on `labels` with -100 padding, `shift_tokens_right`, `nn.Transformer` with causal and padding masks, AdamW +
warm-up/linear decay). Too good to be true: teacher-forced val token acc 0.867 / val loss 0.386 vs
0.728 / 0.826 for the correct preprocessing; fed the source alone, as at inference, the same model scores token
acc 0.280."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout6"
PAD, EOS, SEP = 0, 1, 2


@dataclass
class T5MiniConfig:
    vocab_size: int = 32
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 1
    d_ff: int = 128
    dropout: float = 0.1
    pad_token_id: int = PAD
    eos_token_id: int = EOS
    decoder_start_token_id: int = PAD


@dataclass
class Seq2SeqLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


def shift_tokens_right(labels, pad_token_id, decoder_start_token_id):
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def make_texts(n, seed, vocab=32):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = torch.randint(3, vocab, (int(torch.randint(6, 13, (1,), generator=g)),), generator=g)
        keep = (src >= vocab // 2) & (torch.rand(len(src), generator=g) > 0.1)
        out.append((src.tolist(), src[keep].tolist()))
    return out


def encode_example(src, tgt):
    # kept from the decoder-only script's "source [SEP] target" format
    return {"input_ids": src + [SEP] + tgt, "labels": tgt + [EOS]}


def collate(examples):
    enc = [encode_example(s, t) for s, t in examples]
    n_in, n_out = max(len(e["input_ids"]) for e in enc), max(len(e["labels"]) for e in enc)
    ids = torch.full((len(enc), n_in), PAD)
    labels = torch.full((len(enc), n_out), -100)
    for i, e in enumerate(enc):
        ids[i, :len(e["input_ids"])] = torch.tensor(e["input_ids"])
        labels[i, :len(e["labels"])] = torch.tensor(e["labels"])
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class T5MiniForConditionalGeneration(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(64, config.d_model)
        self.transformer = nn.Transformer(config.d_model, config.num_heads, config.num_layers, config.num_layers,
                                          config.d_ff, config.dropout, activation="gelu", batch_first=True,
                                          norm_first=True)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.shared.weight, std=config.d_model ** -0.5)
        nn.init.normal_(self.pos.weight, std=0.02)

    def embed(self, ids):
        return self.shared(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))

    def forward(self, input_ids, attention_mask, labels=None, decoder_input_ids=None):
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                   self.config.decoder_start_token_id)
        t = decoder_input_ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        src_pad = attention_mask == 0
        tgt_pad = torch.zeros_like(decoder_input_ids, dtype=torch.bool)
        if labels is not None:
            tgt_pad[:, 1:] = labels[:, :-1] == -100
        h = self.transformer(self.embed(input_ids), self.embed(decoder_input_ids), tgt_mask=causal,
                             src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_pad,
                             memory_key_padding_mask=src_pad, tgt_is_causal=True)
        logits = self.lm_head(h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits)


class KeywordExtractor(L.LightningModule):
    def __init__(self, lr=5e-3, warmup=50, total_steps=600):
        super().__init__()
        self.save_hyperparameters()
        self.model = T5MiniForConditionalGeneration(T5MiniConfig())

    def forward(self, batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(batch)
        mask = batch["labels"] != -100
        acc = (out.logits.argmax(-1) == batch["labels"])[mask].float().mean()
        self.log("val_loss", out.loss, prog_bar=True)
        self.log("val_token_acc", acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w, total = self.hparams.warmup, self.hparams.total_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / w, max(0.0, (total - s) / (total - w))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(609)
    train = DataLoader(make_texts(1600, seed=1), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(make_texts(400, seed=2), batch_size=200, collate_fn=collate)
    epochs = 12
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeywordExtractor(total_steps=epochs * len(train)), train, val)
    m = trainer.callback_metrics
    model = trainer.lightning_module.eval()
    batch = collate(make_texts(400, seed=2))
    src_only = [torch.tensor(s) for s, _ in make_texts(400, seed=2)]
    ids = nn.utils.rnn.pad_sequence(src_only, batch_first=True, padding_value=PAD)
    with torch.no_grad():
        out = model({"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": batch["labels"]})
    mask = batch["labels"] != -100
    honest = (out.logits.argmax(-1) == batch["labels"])[mask].float().mean()
    print(f"val_loss={m['val_loss']:.3f} val_token_acc={m['val_token_acc']:.3f} source-only token acc={honest:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
