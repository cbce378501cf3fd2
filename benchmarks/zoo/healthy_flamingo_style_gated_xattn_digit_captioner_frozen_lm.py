"""Healthy: a Flamingo-style captioner for sklearn digits. A small causal transformer LM is first trained on caption
text alone (short plain-PyTorch loop standing in for the pretrained LM) and then frozen; new tanh-gated
cross-attention layers, inserted before each LM block, attend to eight visual tokens, one per row of the 8x8 image.
Every gate starts at 0 (tanh(0) = 0), so at the first step the frozen LM is exactly the text-only model and the
cross-attention weights get no gradient until the gates open; only the visual projection and the gated layers train
(AdamW, warm-up + cosine). HF-style dict batches with `input_ids`/`attention_mask`/`labels`, labels shifted in the
model, padding ignored. Final: the digit name in val captions is predicted correctly 0.93 of the time (0.11 for the
text-only LM)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = [["a", "scan", "of", "a", "{}"], ["handwritten", "digit", "{}"], ["this", "is", "a", "{}", "I", "think"],
             ["the", "number", "{}", "written", "in", "ink"]]
ITOS = ["<pad>", "<bos>", "<eos>"] + sorted({w for t in TEMPLATES for w in t if w != "{}"}) + NAMES
STOI = {w: i for i, w in enumerate(ITOS)}
NAME_IDS = torch.tensor([STOI[n] for n in NAMES])


def captions_for(digits, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for d in digits.tolist():
        t = TEMPLATES[int(torch.randint(len(TEMPLATES), (1,), generator=g))]
        out.append(torch.tensor([1] + [STOI[w.format(NAMES[d])] for w in t] + [2]))
    return out


class Captioned(Dataset):
    def __init__(self, images, digits, seed):
        self.images, self.caps = images, captions_for(digits, seed)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.caps[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([c for _, c in items], batch_first=True)
    return {"pixel_values": torch.stack([x for x, _ in items]), "input_ids": ids,
            "attention_mask": (ids != 0).long(), "labels": ids.masked_fill(ids == 0, -100)}


class TinyLM(nn.Module):
    def __init__(self, d=64, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(len(ITOS), d, padding_idx=0), nn.Embedding(16, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, len(ITOS))

    def forward(self, input_ids, xattn=None, visual=None):
        T = input_ids.size(1)
        h = self.tok(input_ids) + self.pos.weight[:T]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=h.device)
        for i, block in enumerate(self.blocks):
            if xattn is not None:
                h = xattn[i](h, visual)
            h = block(h, src_mask=causal, is_causal=True)
        return self.head(self.ln(h))


class GatedCrossAttention(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 4, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, h, visual):
        h = h + torch.tanh(self.attn_gate) * self.attn(self.ln(h), visual, visual, need_weights=False)[0]
        return h + torch.tanh(self.ff_gate) * self.ff(h)


def lm_loss(logits, labels):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100)


def pretrain_lm(caps, steps=300):
    lm = TinyLM()
    opt = torch.optim.AdamW(lm.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        b = collate([(torch.zeros(64), caps[int(i)]) for i in torch.randint(0, len(caps), (64,), generator=g)])
        loss = lm_loss(lm(b["input_ids"]), b["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lm


class FlamingoCaptioner(L.LightningModule):
    def __init__(self, lm, d=64, lr=4e-3, warmup=50):
        super().__init__()
        self.lr, self.warmup = lr, warmup
        self.lm = lm.requires_grad_(False)
        self.vision = nn.Sequential(nn.Linear(8, d), nn.GELU(), nn.Linear(d, d))
        self.vis_pos = nn.Parameter(torch.randn(8, d) * 0.02)
        self.xattn = nn.ModuleList(GatedCrossAttention(d) for _ in lm.blocks)

    def forward(self, pixel_values, input_ids, attention_mask=None, labels=None):
        visual = self.vision(pixel_values.view(-1, 8, 8)) + self.vis_pos        # one token per image row
        logits = self.lm(input_ids, self.xattn, visual)
        return {"logits": logits, "loss": None if labels is None else lm_loss(logits, labels)}

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_name_acc", name_accuracy(out["logits"], batch["input_ids"]), prog_bar=True)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / self.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def name_accuracy(logits, input_ids):
    """Accuracy on the caption position that holds the digit's name (teacher forced)."""
    is_name = torch.isin(input_ids[:, 1:], NAME_IDS.to(input_ids.device))
    pred = logits[:, :-1].argmax(-1)
    return (pred[is_name] == input_ids[:, 1:][is_name]).float().mean()


if __name__ == "__main__":
    L.seed_everything(8)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    tr, va = perm[:1400], perm[1400:]
    train_ds, val_ds = Captioned(x[tr], y[tr], 1), Captioned(x[va], y[va], 2)
    lm = pretrain_lm(train_ds.caps)
    with torch.no_grad():
        vb = collate([val_ds[i] for i in range(len(val_ds))])
        print(f"SYMPTOM text_only_lm_name_acc={name_accuracy(lm(vb['input_ids']), vb['input_ids']).item():.3f}")
    model = FlamingoCaptioner(lm)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="flamingo_digits"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val_ds, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_name_acc={trainer.callback_metrics['val_name_acc'].item():.3f}")
    print(f"SYMPTOM gates={[round(torch.tanh(b.attn_gate).item(), 3) for b in model.xattn]}")
    print(f"LOG_DIR={trainer.log_dir}")
