"""Healthy: a pointer-generator summariser (See et al., 2017) that writes short headlines from synthetic news
sentences ("on tuesday , NAME met NAME in CITY to discuss TOPIC ..." -> "NAME meets NAME in CITY"). A BiGRU encoder,
a GRU decoder with additive attention (source padding masked), a generation probability p_gen mixing the vocabulary
softmax with the attention distribution scattered onto the source ids, so rare names seen a handful of times in
training are copied. The loss is the NLL of log(final distribution) over non-padding target tokens (teacher forcing,
targets shifted by one). Adam, gradient clipping. Final: val greedy headline exact match 1.00, and the copy
probability 1 - p_gen on name slots is 1.00 (the generator gate saturates there, as it should)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
COMMON = ["<pad>", "<bos>", "<eos>", "on", "monday", "tuesday", "friday", ",", "met", "meets", "in", "to", "discuss",
          "said", "the", "talks", "were", "long", "productive", "after", "lunch", "visits", "visited", "and"]
NAMES = [f"name{i}" for i in range(300)]
CITIES = [f"city{i}" for i in range(60)]
TOPICS = [f"topic{i}" for i in range(40)]
ITOS = COMMON + NAMES + CITIES + TOPICS
STOI = {w: i for i, w in enumerate(ITOS)}
PAD, BOS, EOS = 0, 1, 2


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    pick = lambda xs: xs[int(torch.randint(len(xs), (1,), generator=g))]
    out = []
    for _ in range(n):
        a, b, c, t = pick(NAMES), pick(NAMES), pick(CITIES), pick(TOPICS)
        if float(torch.rand(1, generator=g)) < 0.5:
            src = f"on {pick(['monday', 'tuesday', 'friday'])} , {a} met {b} in {c} to discuss {t} ,"
            src += f" the talks were {pick(['long', 'productive'])}"
            tgt = f"{a} meets {b} in {c}"
        else:
            src = f"after lunch {a} visited {c} and said {t} talks were {pick(['long', 'productive'])}"
            tgt = f"{a} visits {c}"
        out.append((torch.tensor([STOI[w] for w in src.split()]),
                    torch.tensor([BOS] + [STOI[w] for w in tgt.split()] + [EOS])))
    return out


def collate(pairs):
    src = nn.utils.rnn.pad_sequence([s for s, _ in pairs], batch_first=True, padding_value=PAD)
    tgt = nn.utils.rnn.pad_sequence([t for _, t in pairs], batch_first=True, padding_value=PAD)
    return {"input_ids": src, "attention_mask": (src != PAD).long(), "decoder_input_ids": tgt[:, :-1],
            "labels": tgt[:, 1:].masked_fill(tgt[:, 1:] == PAD, -100)}


class PointerGenerator(L.LightningModule):
    def __init__(self, d=64, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(ITOS), d, padding_idx=PAD)
        self.encoder = nn.GRU(d, hidden // 2, batch_first=True, bidirectional=True)
        self.decoder = nn.GRUCell(d + hidden, hidden)
        self.w_enc, self.w_dec = nn.Linear(hidden, hidden, bias=False), nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.vocab_out = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, len(ITOS)))
        self.p_gen = nn.Linear(2 * hidden + d, 1)

    def decode_step(self, y_prev, state, ctx, enc, enc_proj, src, src_mask):
        state = self.decoder(torch.cat([self.embed(y_prev), ctx], -1), state)
        scores = self.v(torch.tanh(enc_proj + self.w_dec(state).unsqueeze(1))).squeeze(-1)
        attn = scores.masked_fill(src_mask == 0, float("-inf")).softmax(-1)
        ctx = torch.bmm(attn.unsqueeze(1), enc).squeeze(1)
        p_vocab = self.vocab_out(torch.cat([state, ctx], -1)).softmax(-1)
        p_gen = torch.sigmoid(self.p_gen(torch.cat([state, ctx, self.embed(y_prev)], -1)))
        final = (p_gen * p_vocab).scatter_add(1, src, (1 - p_gen) * attn)
        return final, state, ctx, p_gen

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels=None):
        enc, _ = self.encoder(self.embed(input_ids))
        enc_proj = self.w_enc(enc)
        state = enc.mean(1)
        ctx = torch.zeros_like(state)
        dists, gens = [], []
        for t in range(decoder_input_ids.size(1)):
            final, state, ctx, p_gen = self.decode_step(decoder_input_ids[:, t], state, ctx, enc, enc_proj,
                                                        input_ids, attention_mask)
            dists.append(final)
            gens.append(p_gen)
        log_probs = torch.stack(dists, 1).clamp_min(1e-12).log()
        loss = None
        if labels is not None:
            loss = F.nll_loss(log_probs.reshape(-1, len(ITOS)), labels.reshape(-1), ignore_index=-100)
        return {"loss": loss, "log_probs": log_probs, "p_gen": torch.stack(gens, 1)}

    @torch.no_grad()
    def greedy(self, input_ids, attention_mask, max_len=8):
        enc, _ = self.encoder(self.embed(input_ids))
        enc_proj, state = self.w_enc(enc), enc.mean(1)
        ctx = torch.zeros_like(state)
        y = torch.full((len(input_ids),), BOS, dtype=torch.long)
        out = []
        for _ in range(max_len):
            final, state, ctx, _ = self.decode_step(y, state, ctx, enc, enc_proj, input_ids, attention_mask)
            y = final.argmax(-1)
            out.append(y)
        return torch.stack(out, 1)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out["loss"])
        hyp = self.greedy(batch["input_ids"], batch["attention_mask"])
        match = []
        for h, ref in zip(hyp.tolist(), batch["labels"].tolist()):
            ref = [r for r in ref if r != -100]
            match.append(h[:len(ref)] == ref)
        self.log("val_exact_match", torch.tensor(match, dtype=torch.float).mean(), prog_bar=True)
        name_slot = (batch["labels"] >= STOI["name0"]) & (batch["labels"] < STOI["city0"])
        self.log("val_copy_prob_on_names", (1 - out["p_gen"].squeeze(-1))[name_slot].mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(1917)
    train, val = make_pairs(1500, 1), make_pairs(300, 2)
    model = PointerGenerator()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=2.0,
                        logger=TensorBoardLogger("lightning_logs", name="pointer_generator"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=150, collate_fn=collate))
    print(f"SYMPTOM val_exact_match={trainer.callback_metrics['val_exact_match'].item():.3f}")
    print(f"SYMPTOM val_copy_prob_on_names={trainer.callback_metrics['val_copy_prob_on_names'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
