"""Healthy: extractive question answering, SQuAD-style, with a small BERT-style encoder (3 pre-LN layers). The context
is a sentence of filler words holding one span (1-3 words) each of a person, a place, a date and an object, in random
order; the question is "who" / "where" / "when" / "what" and the answer is the matching span. Input
"[CLS] question [SEP] context [SEP]" with segment ids. The model predicts start and end logits over positions;
positions outside the context (question, special tokens, padding) are masked with the dtype's minimum before the two
cross-entropies (`BertForQuestionAnswering`-style: loss = (start CE + end CE) / 2, computed in `forward`, dict batches
with `start_positions`/`end_positions`). AdamW with no decay on biases and LayerNorm, a short linear warm-up followed
by polynomial decay (power 0.5) to zero, stepped per optimizer step (`SequentialLR`), gradient clipping at 1.0.
Exact match of the best valid span (end >= start, length <= 3) on held-out examples: about 0.99."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
PAD, CLS, SEP = range(3)
QUESTIONS = ["who", "where", "when", "what"]
N_PER_CLASS, N_FILLER = 30, 60
Q0 = 3
CLASS0 = Q0 + len(QUESTIONS)  # answer words of class k: CLASS0 + k * N_PER_CLASS ...
FILL0 = CLASS0 + len(QUESTIONS) * N_PER_CLASS
VOCAB = FILL0 + N_FILLER


def make_examples(n, seed):
    """A sentence of filler words holding one span (1-3 words) of each answer class (person, place, date, object) in
    random order; the question asks for one class and the answer is that span."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        order = torch.randperm(len(QUESTIONS), generator=g).tolist()
        asked = int(torch.randint(0, len(QUESTIONS), (1,), generator=g))
        context, answer = [], None
        for k in order:
            context += (torch.randint(0, N_FILLER, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g)
                        + FILL0).tolist()
            span = (torch.randint(0, N_PER_CLASS, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g)
                    + CLASS0 + k * N_PER_CLASS).tolist()
            if k == asked:
                answer = (len(context), len(context) + len(span) - 1)
            context += span
        context += (torch.randint(0, N_FILLER, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g)
                    + FILL0).tolist()
        out.append(([Q0 + asked], context, answer))
    return out


def collate(examples):
    rows = [[CLS] + q + [SEP] + c + [SEP] for q, c, _ in examples]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), PAD, dtype=torch.long)
    types = torch.zeros(len(rows), T, dtype=torch.long)
    context_mask = torch.zeros(len(rows), T, dtype=torch.bool)
    starts, ends = [], []
    for i, ((q, c, (s, e)), r) in enumerate(zip(examples, rows)):
        offset = len(q) + 2
        ids[i, :len(r)] = torch.tensor(r)
        types[i, offset:len(r)] = 1
        context_mask[i, offset:offset + len(c)] = True
        starts.append(offset + s), ends.append(offset + e)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": (ids != PAD).long(),
            "context_mask": context_mask, "start_positions": torch.tensor(starts),
            "end_positions": torch.tensor(ends)}


class BertForQuestionAnswering(nn.Module):
    def __init__(self, d=64, n_layers=3, n_heads=4, max_len=32):
        super().__init__()
        self.word = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.position = nn.Embedding(max_len, d)
        self.token_type = nn.Embedding(2, d)
        self.emb_norm = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, n_heads, 4 * d, dropout=0.1, batch_first=True, activation="gelu",
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.qa_outputs = nn.Linear(d, 2)

    def forward(self, input_ids, token_type_ids, attention_mask, context_mask, start_positions=None,
                end_positions=None):
        T = input_ids.size(1)
        x = self.emb_norm(self.word(input_ids) + self.position(torch.arange(T)) + self.token_type(token_type_ids))
        h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        start_logits, end_logits = self.qa_outputs(h).unbind(-1)
        neg = torch.finfo(start_logits.dtype).min
        start_logits = start_logits.masked_fill(~context_mask, neg)
        end_logits = end_logits.masked_fill(~context_mask, neg)
        loss = None
        if start_positions is not None:
            loss = (F.cross_entropy(start_logits, start_positions) + F.cross_entropy(end_logits, end_positions)) / 2
        return {"loss": loss, "start_logits": start_logits, "end_logits": end_logits}


def best_spans(start_logits, end_logits, max_answer_len=3):
    score = start_logits[:, :, None] + end_logits[:, None, :]
    T = score.size(1)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    valid = (j >= i) & (j - i < max_answer_len)
    score = score.masked_fill(~valid, float("-inf")).flatten(1).argmax(1)
    return score // T, score % T


class LitQA(L.LightningModule):
    def __init__(self, lr=3e-3, weight_decay=0.01, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters()
        self.model = BertForQuestionAnswering()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        s, e = best_spans(out["start_logits"], out["end_logits"])
        exact = (s == batch["start_positions"]) & (e == batch["end_positions"])
        self.log("val_loss", out["loss"])
        self.log("val_exact_match", exact.float().mean())

    def configure_optimizers(self):
        no_decay = ("bias", "norm", "emb_norm")
        groups = [
            {"params": [p for n, p in self.model.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in self.model.named_parameters() if any(k in n for k in no_decay)],
             "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total, warmup = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=warmup),
            torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=total - warmup, power=0.5),
        ], milestones=[warmup])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(19)
    train, val = make_examples(5000, seed=1), make_examples(500, seed=2)
    model = LitQA()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="wh_qa"), log_every_n_steps=10,
                        gradient_clip_val=1.0)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=250, collate_fn=collate))
    print(f"SYMPTOM val_exact_match={trainer.callback_metrics['val_exact_match'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
