"""Healthy: a tiny GPT-style word-level language model on a hand-built "recipe step" corpus (a small grammar:
verb, quantity, unit, ingredient, tool, with agreement rules such as liquids taking "ml" and "pour"), written
HuggingFace style: a word tokenizer fitted on the training text with [PAD]/[BOS]/[EOS], dict batches
`input_ids`/`attention_mask`/`labels` (padding labels -100), the model shifts the labels inside `forward` and
returns `.loss`/`.logits`. Pre-norm Transformer with a causal mask plus key-padding mask, input and output
embeddings tied, AdamW with no weight decay on biases/LayerNorm/embeddings, linear warm-up then linear decay per
step, gradient clipping at 1.0. Final val loss 0.571 (val perplexity 1.77)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
LIQUIDS = ["milk", "water", "cream", "oil", "stock"]
SOLIDS = ["flour", "sugar", "butter", "rice", "cheese", "onion"]
TOOLS = {"pour": ["jug", "pan"], "add": ["bowl", "pan", "pot"], "whisk": ["bowl"], "chop": ["board"]}


def make_steps(n, g):
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
    out = []
    for _ in range(n):
        if torch.rand(1, generator=g) < 0.4:
            ing, unit, verb = pick(LIQUIDS), "ml", pick(["pour", "add", "whisk"])
            qty = pick(["50", "100", "200", "250"])
        else:
            ing, unit, verb = pick(SOLIDS), pick(["g", "cups"]), pick(["add", "chop", "whisk"])
            qty = pick(["1", "2", "3"]) if unit == "cups" else pick(["20", "50", "100"])
        words = [verb, qty, unit, "of", ing, "into the" if verb != "chop" else "on the", pick(TOOLS[verb])]
        if torch.rand(1, generator=g) < 0.5:
            words += ["and", "stir" if verb != "chop" else "set aside"]
        out.append(" ".join(words) + " .")
    return out


class WordTokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.pad_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 2
        self.vocab = {"[PAD]": 0, "[BOS]": 1, "[EOS]": 2, "[UNK]": 3, **{w: i + 4 for i, w in enumerate(words)}}

    def __call__(self, texts):
        ids = [[1] + [self.vocab.get(w, 3) for w in t.split()] + [2] for t in texts]
        T = max(map(len, ids))
        input_ids = torch.zeros(len(ids), T, dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
        mask = (input_ids != 0).long()
        return {"input_ids": input_ids, "attention_mask": mask, "labels": input_ids.masked_fill(mask == 0, -100)}


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.1, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(0.1))

    def forward(self, x, causal, pad):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, key_padding_mask=pad, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TinyGPTLMHeadModel(nn.Module):
    def __init__(self, vocab_size, d=64, layers=2, heads=4, max_len=24):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, d), nn.Embedding(max_len, d)
        self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask, labels=None):
        T = input_ids.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=input_ids.device), 1)
        x = self.wte(input_ids) + self.wpe(torch.arange(T, device=input_ids.device))
        for block in self.h:
            x = block(x, causal, attention_mask == 0)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitGPT(L.LightningModule):
    def __init__(self, vocab_size, lr=3e-3, warmup_ratio=0.06):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPTLMHeadModel(vocab_size)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("val_loss", loss)
        self.log("val_ppl", torch.exp(loss))

    def configure_optimizers(self):
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "ln_" in n or n.startswith(("wte", "wpe")) else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr, betas=(0.9, 0.95))
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(self.hparams.warmup_ratio * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(77)
    g = torch.Generator().manual_seed(77)
    train, val = make_steps(4000, g), make_steps(500, g)
    tok = WordTokenizer(train)
    lit = LitGPT(len(tok.vocab))
    trainer = L.Trainer(max_epochs=4, gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks(),
                        accelerator="cpu", devices=1, logger=TensorBoardLogger("lightning_logs", name="lm19_gpt_recipe"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(lit, DataLoader(train, batch_size=64, shuffle=True, collate_fn=tok),
                DataLoader(val, batch_size=250, collate_fn=tok))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_ppl={m['val_ppl'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")
