"""Healthy: GPT-2-style pretraining on packed sequences. The corpus is a stream of short "documents", each a
statement `a+b=c` or `a-b=c` (a, b < 40, c computed, digits written normally) followed by `<eos>`. As in GPT-2 /
nanoGPT, the documents are concatenated into one token stream and cut into fixed 48-token blocks with no padding, so
a block may start or end in the middle of a document; attention is causal across the whole block (documents are
separated by `<eos>`, not by a block-diagonal mask). The model returns HF-style outputs and shifts labels itself
(`labels=input_ids`, loss on `logits[:, :-1]` vs `labels[:, 1:]`). Tied input/output embeddings, initialised like
GPT-2 (normal std 0.02, residual projections scaled by 1/sqrt(2 * layers)) *after* tying, AdamW with no decay on
biases/LayerNorm, bf16 autocast, gradient accumulation of 2, warm-up + cosine stepped per optimiser step.

Why it is correct: the documents are split into train/val *before* packing (the val stream is built from its own
documents), every label is the next token of the stream, and attending to earlier documents in the block is
causal and is standard practice (the model learns that `<eos>` resets the context). The cross-entropy after
initialisation is ~ln 17 = 2.83 because the tied head starts at std 0.02. Measured: val loss 1.49 nats/token after
six epochs (the operands are random, so most of the stream is incompressible); the run is short, the model has
learned the format and digit statistics but not yet the arithmetic (answer-digit accuracy 0.16)."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
CHARS = "0123456789+-=$"  # '$' is <eos>
STOI = {c: i + 3 for i, c in enumerate(CHARS)}  # 0..2 reserved
VOCAB, BLOCK = 17, 48


def documents(n, g):
    a, b = torch.randint(0, 40, (n,), generator=g).tolist(), torch.randint(0, 40, (n,), generator=g).tolist()
    ops = torch.randint(0, 2, (n,), generator=g).tolist()
    return [f"{x}+{y}={x + y}$" if o else f"{max(x, y)}-{min(x, y)}={abs(x - y)}$" for x, y, o in zip(a, b, ops)]


def pack(docs):
    stream = torch.tensor([STOI[c] for c in "".join(docs)])
    n = len(stream) // BLOCK
    return stream[: n * BLOCK].view(n, BLOCK)


@dataclass
class CausalLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class PackedGPT(L.LightningModule):
    def __init__(self, d=64, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(BLOCK, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.h = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("out_proj.weight") or name.endswith("linear2.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, labels=None):
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        logits = self.lm_head(self.ln_f(self.h(x, mask=mask, is_causal=True)))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten())
        return CausalLMOutput(loss, logits)

    def training_step(self, batch, batch_idx):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self(input_ids=batch[0], labels=batch[0])
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self(input_ids=batch[0], labels=batch[0])
        ids = batch[0]
        after_eq = torch.zeros_like(ids, dtype=torch.bool)
        for j in range(1, ids.shape[1]):
            after_eq[:, j] = (after_eq[:, j - 1] | (ids[:, j - 1] == STOI["="])) & (ids[:, j - 1] != STOI["$"])
        hit = (out.logits[:, :-1].argmax(-1) == ids[:, 1:])[after_eq[:, 1:] & (ids[:, 1:] != STOI["$"])]
        self.log_dict({"val_loss": out.loss, "val_answer_acc": hit.float().mean()})

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr, betas=(0.9, 0.95))
        total, warm = self.trainer.estimated_stepping_batches, 20

        def lr_lambda(s):
            if s < warm:
                return (s + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / (total - warm))))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(2406)
    g = torch.Generator().manual_seed(9)
    docs = documents(6000, g)
    train, val = pack(docs[:5400]), pack(docs[5400:])
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, accumulate_grad_batches=2, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PackedGPT(), DataLoader(TensorDataset(train), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=128))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_answer_acc={float(m['val_answer_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
