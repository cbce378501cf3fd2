"""Healthy: an unsupervised SimCSE sentence encoder. Each training sentence (a hand-built corpus: four content words
out of 300 shuffled among a few function words) is passed twice through the same Transformer encoder in train mode,
the two dropout masks being the only "augmentation"; the loss, computed inside the model from dict batches
`input_ids`/`attention_mask`, is InfoNCE over the batch with temperature 0.05 (the other sentences of the batch are
the negatives - cross-sample by design). AdamW with no decay on biases/LayerNorm, linear warm-up and decay. Validation
is retrieval: each val query must find its paraphrase (same content words, different function words and order)
among 200 candidates by cosine similarity. Final val top-1 retrieval 0.88 (0.42 for the same encoder before
training, measured with `trainer.validate` first)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
N_CONTENT, N_FILLER = 300, 6


def sentence(content, g):
    filler = [f"f{i}" for i in torch.randint(N_FILLER, (int(torch.randint(2, 6, (1,), generator=g)),),
                                             generator=g).tolist()]
    words = [f"w{c}" for c in content] + filler
    return " ".join(words[i] for i in torch.randperm(len(words), generator=g).tolist())


def make_corpus(n, g):
    return [sentence(torch.randint(N_CONTENT, (4,), generator=g).tolist(), g) for _ in range(n)]


def make_pairs(n, g):
    contents = [torch.randint(N_CONTENT, (4,), generator=g).tolist() for _ in range(n)]
    return [sentence(c, g) for c in contents], [sentence(c, g) for c in contents]


class Tokenizer:
    def __init__(self):
        words = [f"w{i}" for i in range(N_CONTENT)] + [f"f{i}" for i in range(N_FILLER)]
        self.vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}

    def __call__(self, texts):
        ids = [[self.vocab.get(w, 1) for w in t.split()] for t in texts]
        input_ids = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


class SimCSEModel(nn.Module):
    def __init__(self, vocab_size, d=64, temperature=0.05):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.temperature = temperature
        nn.init.normal_(self.embed.weight, std=0.1)

    def encode(self, input_ids, attention_mask):
        h = self.norm(self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0))
        m = attention_mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)

    def forward(self, input_ids, attention_mask):
        z1 = F.normalize(self.mlp(self.encode(input_ids, attention_mask)), dim=-1)
        z2 = F.normalize(self.mlp(self.encode(input_ids, attention_mask)), dim=-1)
        logits = z1 @ z2.T / self.temperature
        loss = F.cross_entropy(logits, torch.arange(len(z1), device=z1.device))
        return {"loss": loss, "logits": logits}


class LitSimCSE(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = SimCSEModel(vocab_size)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        q = F.normalize(self.model.encode(batch["q_input_ids"], batch["q_attention_mask"]), dim=-1)
        c = F.normalize(self.model.encode(batch["c_input_ids"], batch["c_attention_mask"]), dim=-1)
        self.log("val_top1", ((q @ c.T).argmax(-1) == torch.arange(len(q))).float().mean())

    def configure_optimizers(self):
        named = list(self.model.named_parameters())
        skip = [p for n, p in named if p.ndim < 2 or "norm" in n]
        rest = [p for n, p in named if not (p.ndim < 2 or "norm" in n)]
        opt = torch.optim.AdamW([{"params": rest, "weight_decay": 0.01}, {"params": skip, "weight_decay": 0.0}],
                                lr=3e-3)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(0.1 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(99)
    g = torch.Generator().manual_seed(99)
    tok = Tokenizer()
    corpus = make_corpus(4000, g)
    queries, candidates = make_pairs(200, g)

    def val_collate(batch):
        q, c = tok([a for a, _ in batch]), tok([b for _, b in batch])
        return {"q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
                "c_input_ids": c["input_ids"], "c_attention_mask": c["attention_mask"]}

    lit = LitSimCSE(len(tok.vocab))
    val_dl = DataLoader(list(zip(queries, candidates)), batch_size=200, collate_fn=val_collate)
    trainer = L.Trainer(max_epochs=6, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_simcse"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.validate(lit, val_dl, verbose=False)
    print(f"SYMPTOM untrained_val_top1={trainer.callback_metrics['val_top1'].item():.3f}")
    trainer.fit(lit, DataLoader(corpus, batch_size=64, shuffle=True, collate_fn=tok, drop_last=True), val_dl)
    print(f"SYMPTOM val_top1={trainer.callback_metrics['val_top1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
