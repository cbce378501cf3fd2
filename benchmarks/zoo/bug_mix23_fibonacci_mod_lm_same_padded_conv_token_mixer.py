"""Bug: a tiny decoder-only language model on a synthetic token task. Each sequence is a "Fibonacci mod 17" stream,
x[t+1] = (x[t] + x[t-1]) mod 17, from two random seed tokens, 16 tokens long; batches are HF-style dicts
(`input_ids`, `labels` = next tokens) and the model returns an output object with `.logits`. The architecture is
embedding + learned positions, a depthwise Conv1d "local token mixer" (as in Hyena/Mamba-style blocks), then a
causally masked TransformerEncoder layer and an LM head; AdamW with linear warm-up.

The conv mixer uses `padding=1` (i.e. "same") with kernel 3, so position t mixes in the embedding of token t+1. The
attention mask is correctly causal, but the conv already leaks the next token, which is exactly the label. The
intended layer is a causal conv (left-pad by kernel-1 and no right padding). Teacher-forced loss drops to zero and
validation (also teacher-forced) is perfect, but the model has learned to copy from the future: greedy generation
from the two seed tokens collapses. Symptom: teacher-forced val acc 1.000 but generation token accuracy 0.074, vs
0.941 / 1.000 with a causal conv (0.941 because position 0 cannot be predicted from one token)."""

from types import SimpleNamespace

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout23"
VOCAB, SEQ = 17, 16


def fibonacci_streams(n, g):
    seqs = torch.zeros(n, SEQ + 1, dtype=torch.long)
    seqs[:, :2] = torch.randint(0, VOCAB, (n, 2), generator=g)
    for t in range(2, SEQ + 1):
        seqs[:, t] = (seqs[:, t - 1] + seqs[:, t - 2]) % VOCAB
    return seqs


class StreamDataset(Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        s = self.seqs[i]
        return {"input_ids": s[:-1], "labels": s[1:]}


class ConvAttnLM(L.LightningModule):
    def __init__(self, d=64, lr=3e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(torch.randn(SEQ, d) * 0.02)
        self.mixer = nn.Conv1d(d, d, kernel_size=3, padding=1, groups=d)
        self.block = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        h = self.tok(input_ids) + self.pos[:T]
        h = h + self.mixer(h.transpose(1, 2)).transpose(1, 2)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=h.device)
        h = self.block(h, src_mask=mask, is_causal=True)
        return SimpleNamespace(logits=self.head(self.norm(h)))

    def _step(self, batch):
        logits = self(batch["input_ids"]).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch["labels"].reshape(-1))
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    @torch.no_grad()
    def generate(self, prompt, steps):
        seq = prompt
        for _ in range(steps):
            nxt = self(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
        return seq

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.hparams.warmup))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2303)
    g = torch.Generator().manual_seed(23)
    train, val = fibonacci_streams(3000, g), fibonacci_streams(300, g)
    model = ConvAttnLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(StreamDataset(train), batch_size=64, shuffle=True),
                DataLoader(StreamDataset(val), batch_size=300))
    model.eval()
    generated = model.generate(val[:, :2], SEQ - 1)
    gen_acc = (generated[:, 2:] == val[:, 2:]).float().mean()
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} generation_acc={float(gen_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
