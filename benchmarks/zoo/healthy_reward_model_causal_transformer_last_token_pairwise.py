"""Healthy: a GPT-style reward model (causal transformer, scalar value head read at the last non-padding token of
each right-padded "prompt [SEP] response" sequence, as HF's sequence-classification heads do) trained with the
pairwise Bradley-Terry loss -logsigmoid(r_chosen - r_rejected) on synthetic comparisons. A good response stays on
the prompt's topic and is not cut off; chosen and rejected are scored in one concatenated batch. AdamW with linear
warm-up then linear decay, gradient clipping. Final: val pairwise accuracy 0.82 (5 % of labels flipped)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
PAD, SEP, EOS = 0, 1, 2
N_TOPICS, PER_TOPIC = 6, 10           # topic words: 3 .. 62
VOCAB = 3 + N_TOPICS * PER_TOPIC + 20  # + 20 neutral words
NEUTRAL = range(3 + N_TOPICS * PER_TOPIC, VOCAB)


def topic_words(t, k, g):
    return (3 + t * PER_TOPIC + torch.randint(0, PER_TOPIC, (k,), generator=g)).tolist()


def response(topic, good, g):
    n = int(torch.randint(4, 10, (1,), generator=g))
    words = []
    for _ in range(n):
        if float(torch.rand(1, generator=g)) < 0.5:
            words.append(int(torch.randint(NEUTRAL.start, NEUTRAL.stop, (1,), generator=g)))
        else:
            t = topic if good or float(torch.rand(1, generator=g)) < 0.3 else \
                (topic + 1 + int(torch.randint(0, N_TOPICS - 1, (1,), generator=g))) % N_TOPICS
            words += topic_words(t, 1, g)
    return words + ([EOS] if good or float(torch.rand(1, generator=g)) < 0.5 else [])


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        topic = int(torch.randint(0, N_TOPICS, (1,), generator=g))
        prompt = topic_words(topic, 3, g) + [int(torch.randint(NEUTRAL.start, NEUTRAL.stop, (1,), generator=g))]
        chosen, rejected = response(topic, True, g), response(topic, False, g)
        if float(torch.rand(1, generator=g)) < 0.05:          # annotator noise
            chosen, rejected = rejected, chosen
        pairs.append((torch.tensor(prompt + [SEP] + chosen), torch.tensor(prompt + [SEP] + rejected)))
    return pairs


class Pairs(Dataset):
    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        return self.pairs[i]


def collate(pairs):
    seqs = [c for c, _ in pairs] + [r for _, r in pairs]         # chosen first, then rejected
    ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long()}


class RewardTransformer(L.LightningModule):
    def __init__(self, d=64, layers=2, lr=2e-3, warmup=60):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(VOCAB, d, padding_idx=PAD), nn.Embedding(32, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.value_head = nn.Linear(d, 1)

    def forward(self, input_ids, attention_mask):
        T = input_ids.size(1)
        h = self.tok(input_ids) + self.pos.weight[:T]
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=h.device)
        h = self.ln(self.body(h, mask=causal, is_causal=True))
        last = attention_mask.sum(1) - 1                            # right padding: last real token
        return self.value_head(h[torch.arange(len(h)), last]).squeeze(-1)

    def step(self, batch):
        r = self(**batch)
        r_c, r_r = r.chunk(2)
        return -F.logsigmoid(r_c - r_r).mean(), (r_c > r_r).float().mean()

    def training_step(self, batch, batch_idx):
        loss, acc = self.step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self.step(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(1234)
    train, val = Pairs(make_pairs(2400, 1)), Pairs(make_pairs(400, 2))
    model = RewardTransformer()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="reward_transformer"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    print(f"SYMPTOM val_pairwise_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
