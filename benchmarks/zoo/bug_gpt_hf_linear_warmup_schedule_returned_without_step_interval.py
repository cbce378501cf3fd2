"""Bug: a tiny GPT (causal self-attention, tied input/output embeddings, HF-style `input_ids`/`attention_mask`/`labels`
with -100 on padding and the shifted loss inside the model) trained on "event logs" drawn from a fixed sparse Markov
chain. The schedule is a port of transformers' `get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0.1 *
total, num_training_steps=total)`, where total = epochs * len(train_loader) counts optimizer steps - but
`configure_optimizers` returns it as `[optimizer], [scheduler]`, and Lightning steps such a scheduler once per epoch.
The warm-up that should take the first 20 of 200 steps never ends: the lr is 0 for the whole first epoch and
reaches only 7/20 of its peak in the last one. Symptom: val loss 1.73 vs 1.38 with `"interval": "step"` (train loss
1.75 vs 1.37; uniform baseline ln 60 = 4.1)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout17"
PAD, BOS = 0, 1
N_EVENTS, MAXLEN = 60, 32
VOCAB = N_EVENTS + 2


def markov_table(g):
    """Each event has 4 possible successors with skewed probabilities."""
    table = torch.zeros(N_EVENTS, N_EVENTS)
    for s in range(N_EVENTS):
        nxt = torch.randperm(N_EVENTS, generator=g)[:4]
        table[s, nxt] = torch.tensor([0.55, 0.25, 0.12, 0.08])
    return table


def sample_logs(n, table, g):
    logs = []
    for _ in range(n):
        length = int(torch.randint(12, MAXLEN, (1,), generator=g))
        s = int(torch.randint(0, N_EVENTS, (1,), generator=g))
        seq = [s]
        for _ in range(length - 1):
            s = int(torch.multinomial(table[s], 1, generator=g))
            seq.append(s)
        logs.append([BOS] + [e + 2 for e in seq])
    return logs


class Logs(Dataset):
    def __init__(self, logs):
        self.logs = logs

    def __len__(self):
        return len(self.logs)

    def __getitem__(self, i):
        return self.logs[i]


def collate(batch):
    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), PAD)
    for i, x in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
    mask = (ids != PAD).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, causal, pad):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, key_padding_mask=pad, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPTLMHeadModel(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d)
        self.wpe = nn.Embedding(MAXLEN + 1, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)

    def forward(self, input_ids, attention_mask, labels=None):
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
        for blk in self.blocks:
            x = blk(x, causal, attention_mask == 0)
        logits = self.ln_f(x) @ self.wte.weight.T
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps):
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return current_step / max(1, num_warmup_steps)
        return max(0.0, (num_training_steps - current_step) / max(1, num_training_steps - num_warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


class LMModule(L.LightningModule):
    def __init__(self, num_training_steps):
        super().__init__()
        self.model = TinyGPTLMHeadModel()
        self.num_training_steps = num_training_steps

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch)["loss"])

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "wpe" not in n]
        no_decay = [p for n, p in self.named_parameters() if not (p.ndim >= 2 and "wpe" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=3e-3, betas=(0.9, 0.95))
        sched = get_linear_schedule_with_warmup(opt, int(0.1 * self.num_training_steps), self.num_training_steps)
        return [opt], [sched]


def main():
    L.seed_everything(2024)
    g = torch.Generator().manual_seed(2024)
    table = markov_table(g)
    train_dl = DataLoader(Logs(sample_logs(1600, table, g)), batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(Logs(sample_logs(300, table, g)), batch_size=128, collate_fn=collate)
    epochs = 8
    module = LMModule(num_training_steps=epochs * len(train_dl))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=1.0, logger=TensorBoardLogger("lightning_logs", name="gpt_warmup"),
                        enable_checkpointing=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(module, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
