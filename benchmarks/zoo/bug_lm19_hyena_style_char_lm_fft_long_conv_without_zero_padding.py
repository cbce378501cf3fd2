"""Bug: a Hyena/H3-style character language model (no attention: each block mixes tokens with a learnable
per-channel long convolution computed by FFT, gated by a second projection), written HuggingFace style: dict
batches `input_ids`/`attention_mask`/`labels`, the model shifts the labels and returns `.loss`/`.logits`. The
corpus is hand-built sentences ("anna buys 3 apples.") over a character tokenizer fitted on the training text.
The long convolution is `irfft(rfft(u, n=T) * rfft(h, n=T), n=T)`: without zero-padding both signals to 2T the FFT
product is a *circular* convolution, so filter tap k = T-1 carries u[t+1] into position t (the H3/Hyena code pads
to 2T and crops; the user "simplified" it because the shapes worked out). The model learns to read the next
character and the loss looks wonderful. Symptom: val next-char loss 0.037 vs 0.332 with the `n=2*T` padding and
crop; scored the way generation sees it (each position from its prefix alone) the bug model's loss is 0.642 vs
0.332 with the fix - the leak is not there at inference time."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout19"
NAMES = ["anna", "bob", "carl", "dina", "eve", "fred", "gina", "hugo"]
VERBS = {"buys": ["apples", "bread", "milk"], "reads": ["books", "papers"], "fixes": ["bikes", "cars", "locks"]}
MAXLEN = 40


def make_corpus(n, g):
    verbs = list(VERBS)
    out = []
    for _ in range(n):
        name = NAMES[int(torch.randint(len(NAMES), (1,), generator=g))]
        verb = verbs[int(torch.randint(len(verbs), (1,), generator=g))]
        objs = VERBS[verb]
        obj = objs[int(torch.randint(len(objs), (1,), generator=g))]
        count = int(torch.randint(2, 10, (1,), generator=g))
        out.append(f"{name} {verb} {count} {obj}.")
    return out


class CharTokenizer:
    def __init__(self, texts):
        chars = sorted(set("".join(texts)))
        self.pad_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 2
        self.vocab = {c: i + 3 for i, c in enumerate(chars)}

    def __len__(self):
        return len(self.vocab) + 3

    def __call__(self, texts):
        ids = [[self.bos_token_id] + [self.vocab[c] for c in t] + [self.eos_token_id] for t in texts]
        T = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), T), self.pad_token_id)
        mask = torch.zeros(len(ids), T, dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


class TextDataset(Dataset):
    def __init__(self, texts):
        self.texts = texts

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        return self.texts[i]


def make_collate(tok):
    def collate(texts):
        enc = tok(texts)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        enc["labels"] = labels
        return enc

    return collate


class FFTLongConv(nn.Module):
    def __init__(self, d, max_len):
        super().__init__()
        decay = torch.exp(-torch.arange(max_len).float()[None] / torch.linspace(2, 20, d)[:, None])
        self.filter = nn.Parameter(decay * torch.randn(d, max_len) * 0.3)
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, u):  # u: (B, T, D)
        T = u.shape[1]
        u = u.transpose(1, 2)
        h = self.filter[:, :T]
        y = torch.fft.irfft(torch.fft.rfft(u, n=T) * torch.fft.rfft(h, n=T), n=T)
        return (y + u * self.bias[:, None]).transpose(1, 2)


class HyenaBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.in_proj = nn.Linear(d, 2 * d)
        self.conv = FFTLongConv(d, MAXLEN)
        self.out_proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        u, gate = self.in_proj(self.ln1(x)).chunk(2, dim=-1)
        x = x + self.out_proj(self.conv(u) * torch.sigmoid(gate))
        return x + self.mlp(self.ln2(x))


class HyenaForCausalLM(nn.Module):
    def __init__(self, vocab_size, d=64, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d)
        self.wpe = nn.Embedding(MAXLEN, d)
        self.blocks = nn.ModuleList([HyenaBlock(d) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab_size, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitLM(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = HyenaForCausalLM(vocab_size)

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"], prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.01)


@torch.no_grad()
def prefix_only_loss(model, tok, texts):
    """Next-char loss the way generation sees it: position t is scored from input_ids[:t+1] alone."""
    model.eval()
    total, count = 0.0, 0
    for t in texts:
        ids = tok([t])["input_ids"]
        for j in range(1, ids.shape[1]):
            logits = model(input_ids=ids[:, :j])["logits"][0, -1]
            total += F.cross_entropy(logits, ids[0, j]).item()
            count += 1
    return total / count


if __name__ == "__main__":
    L.seed_everything(19)
    g = torch.Generator().manual_seed(19)
    train_texts, val_texts = make_corpus(3000, g), make_corpus(500, g)
    tok = CharTokenizer(train_texts)
    collate = make_collate(tok)
    train_dl = DataLoader(TextDataset(train_texts), batch_size=32, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(TextDataset(val_texts), batch_size=100, collate_fn=collate)
    lit = LitLM(len(tok))
    trainer = L.Trainer(max_epochs=3, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_hyena"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, train_dl, val_dl)
    val_loss = trainer.callback_metrics["val_loss"].item()
    print(f"SYMPTOM val_loss={val_loss:.3f}")
    print(f"SYMPTOM prefix_only_val_loss={prefix_only_loss(lit.model, tok, val_texts[:40]):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
