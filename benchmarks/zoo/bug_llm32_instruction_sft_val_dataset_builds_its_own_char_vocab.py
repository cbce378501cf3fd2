"""Bug: instruction SFT of a small character-level GPT (prompt masked out of the loss) on two templated arithmetic tasks,
`Add: 17+30=` -> `47` and `Sub: 30-17=` -> `13` (operands 0..49; the 2500 operand pairs are split before rendering, so
no eval problem is in training; the held-out eval set is the addition task only). Each `InstructionDataset` builds its
character vocabulary from *its own* texts (`specials + sorted(set(chars))`) instead of receiving the tokenizer fitted
on the training data. The eval texts never contain `-`, `S`, `u` or `b`, and `-` sorts just before the digits, so in
the validation vocabulary every digit (and `:`, `=`) sits one id lower than in training: `17+30=` reaches the model as
`06+2-:` in training ids and the answer labels are shifted the same way, which is no longer a correct sum.

Why training still "works": nothing crashes (all val ids are < the train vocab size), the training loss falls as in
the fixed run, and validation is computed every epoch; it is simply answering a different question. Measured against
the fixed version (val dataset encoded with the training tokenizer): val loss 3.24 with the bug, above the uniform
ln 24 = 3.18, vs 1.09 fixed (train loss 1.06 in both); answer-token accuracy 0.37 vs 0.55."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout32"
SPECIALS = ["<pad>", "<bos>", "<eos>"]
MAX_LEN = 24


class InstructionDataset(Dataset):
    def __init__(self, pairs):
        self.itos = SPECIALS + sorted(set("".join(p + a for p, a in pairs)))
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.rows = []
        for prompt, answer in pairs:
            p = [1] + [self.stoi[c] for c in prompt]
            a = [self.stoi[c] for c in answer] + [2]
            self.rows.append({"input_ids": p + a, "labels": [-100] * len(p) + a})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(rows):
    ids = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
    labels = torch.full((len(rows), MAX_LEN), -100)
    att = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n], labels[i, :n], att[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


class InstructionData(L.LightningDataModule):
    def __init__(self, seed=32):
        super().__init__()
        self.seed = seed

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(self.seed)
        problems = torch.randperm(50 * 50, generator=g).tolist()
        train_p, val_p = problems[:2200], problems[2200:]
        train = [(f"Add: {p // 50}+{p % 50}=", str(p // 50 + p % 50)) for p in train_p[:1100]]
        train += [(f"Sub: {max(divmod(p, 50))}-{min(divmod(p, 50))}=", str(abs(p // 50 - p % 50)))
                  for p in train_p[1100:]]
        self.train_ds = InstructionDataset(train)
        self.val_ds = InstructionDataset([(f"Add: {p // 50}+{p % 50}=", str(p // 50 + p % 50)) for p in val_p])
        self.vocab_size = len(self.train_ds.itos)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=50, shuffle=True, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=150, collate_fn=collate)


class Output:
    def __init__(self, logits, loss):
        self.logits, self.loss = logits, loss


class CharGPT(L.LightningModule):
    def __init__(self, vocab_size, d=64, heads=4, layers=2, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Embedding(MAX_LEN, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab_size)

    def forward(self, input_ids, attention_mask, labels):
        t = input_ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        h = self.body(self.tok(input_ids) + self.pos(torch.arange(t)), mask=causal, is_causal=True)
        logits = self.lm_head(self.ln_f(h))
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return Output(logits, loss)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        tgt = batch["labels"][:, 1:]
        keep = tgt != -100
        acc = (out.logits[:, :-1].argmax(-1) == tgt)[keep].float().mean()
        self.log_dict({"val_loss": out.loss, "val_answer_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3204)
    dm = InstructionData()
    dm.setup("fit")
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CharGPT(dm.vocab_size), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_answer_acc={float(m['val_answer_acc']):.3f} "
          f"train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
