"""Healthy: two-stage workflow. Stage 1 (plain PyTorch loop) pre-trains a small Transformer encoder with BERT-style
masked-LM (15 % of tokens: 80 % [MASK], 10 % random, 10 % kept; labels -100 elsewhere) on 4000 unlabeled sequences
drawn from two different Markov "dialects", and saves the encoder's state_dict. Stage 2 (Lightning) loads it into
a sequence classifier with a new head (masked mean pooling + dropout + linear) and fine-tunes on only 160 labelled
sequences (which dialect?) with layer-wise learning-rate decay (embeddings 0.36x, layer 0 0.6x, layer 1 1x, head 5x),
linear warm-up then linear decay (LambdaLR per optimizer step) and accumulate_grad_batches=2. Dict batches with
the loss computed inside the model. Final val acc 0.985 (0.948 for the same classifier trained from scratch)."""

import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

N_SYM = 28
PAD, MASK = N_SYM, N_SYM + 1
VOCAB = N_SYM + 2
SEQ = 32


def dialect(g):
    t = torch.zeros(N_SYM, N_SYM)
    for s in range(N_SYM):
        t[s, torch.randperm(N_SYM, generator=g)[:4]] = torch.rand(4, generator=g) + 0.2
    return t / t.sum(1, keepdim=True)


def sample(table, n, g):
    x = torch.empty(n, SEQ, dtype=torch.long)
    x[:, 0] = torch.randint(0, N_SYM, (n,), generator=g)
    for t in range(1, SEQ):
        x[:, t] = torch.multinomial(table[x[:, t - 1]], 1, generator=g).squeeze(1)
    lengths = torch.randint(SEQ // 2, SEQ + 1, (n,), generator=g)
    x[torch.arange(SEQ)[None, :] >= lengths[:, None]] = PAD
    return x


class Encoder(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(SEQ, d)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, input_ids, attention_mask):
        h = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=~attention_mask)
        return self.norm(h)


def pretrain_mlm(corpus, steps=350, seed=0):
    torch.manual_seed(seed)
    enc = Encoder()
    mlm_head = nn.Linear(64, VOCAB)
    opt = torch.optim.AdamW([*enc.parameters(), *mlm_head.parameters()], lr=2e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        ids = corpus[torch.randint(len(corpus), (64,), generator=g)]
        attn = ids != PAD
        pick = (torch.rand(ids.shape, generator=g) < 0.15) & attn
        labels = torch.where(pick, ids, torch.full_like(ids, -100))
        r = torch.rand(ids.shape, generator=g)
        inp = torch.where(pick & (r < 0.8), torch.full_like(ids, MASK), ids)
        rand_tok = torch.randint(0, N_SYM, ids.shape, generator=g)
        inp = torch.where(pick & (r >= 0.8) & (r < 0.9), rand_tok, inp)
        loss = F.cross_entropy(mlm_head(enc(inp, attn)).reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.state_dict(), float(loss)


class DialectClassifier(L.LightningModule):
    def __init__(self, pretrained_path=None, base_lr=1e-3, head_lr=5e-3, layer_decay=0.6, warmup_frac=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder()
        if pretrained_path is not None:
            self.encoder.load_state_dict(torch.load(pretrained_path, weights_only=True))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 2))

    def forward(self, input_ids, attention_mask, labels=None):
        h = self.encoder(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).float()
        logits = self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}

    def _batch(self, batch):
        ids, y = batch
        return {"input_ids": ids, "attention_mask": ids != PAD, "labels": y}

    def training_step(self, batch, batch_idx):
        out = self(**self._batch(batch))
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        b = self._batch(batch)
        out = self(**b)
        self.log_dict({"val_loss": out["loss"], "val_acc": (out["logits"].argmax(-1) == b["labels"]).float().mean()})

    def configure_optimizers(self):
        hp, enc = self.hparams, self.encoder
        n = len(enc.layers)
        groups = [{"params": [*enc.tok.parameters(), *enc.pos.parameters()], "lr": hp.base_lr * hp.layer_decay ** n}]
        for i, layer in enumerate(enc.layers):
            groups.append({"params": layer.parameters(), "lr": hp.base_lr * hp.layer_decay ** (n - 1 - i)})
        groups.append({"params": enc.norm.parameters(), "lr": hp.base_lr})
        groups.append({"params": self.head.parameters(), "lr": hp.head_lr})
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = max(1, int(hp.warmup_frac * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(31)
    g = torch.Generator().manual_seed(31)
    a, b = dialect(g), dialect(g)
    corpus = torch.cat([sample(a, 2000, g), sample(b, 2000, g)])
    state, mlm_loss = pretrain_mlm(corpus)
    path = os.path.join(tempfile.mkdtemp(), "mlm_encoder.pt")
    torch.save(state, path)

    def labelled(n):
        x = torch.cat([sample(a, n // 2, g), sample(b, n // 2, g)])
        y = torch.cat([torch.zeros(n // 2, dtype=torch.long), torch.ones(n // 2, dtype=torch.long)])
        return TensorDataset(x, y)

    train, val = labelled(160), labelled(600)
    model = DialectClassifier(pretrained_path=path)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, accumulate_grad_batches=2,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=300))
    print(f"SYMPTOM mlm_final_loss={mlm_loss:.3f}")
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
