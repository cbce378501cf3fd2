"""Bug: a tiny GPT (learned positions, causal self-attention, HF-style dict batches with `labels` = -100 everywhere
except the answer token, loss computed inside the model) learns modular arithmetic "a ∘ b = c" with
c = (a² + a·b + b²) mod 47. The problem generator draws (a, b) uniformly *with replacement* - 6000 draws from only
2209 distinct problems - and the resulting list is then split 80/20 with `random_split`. About 90 % of the validation
problems also occur, with the same answer, in the training set, so validation accuracy measures memorisation of the
lookup table, not the rule. Users write it because "random problems, random split" looks like independent data.
Symptom: val acc 0.95, but 91 % of the validation problems are training problems and on the others the model gets
0.70; with the problems de-duplicated before the split (same model, same 350 steps) the honest val acc is 0.72 - the
reported 0.95 is memorisation."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout12"

P = 47
OP, EQ = P, P + 1
VOCAB = P + 2
SEQ = 5          # a op b = c


def answer(a, b):
    return (a * a + a * b + b * b) % P


class Problems(Dataset):
    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        a, b = self.pairs[i]
        ids = torch.tensor([a, OP, b, EQ, answer(a, b)])
        labels = torch.full((SEQ,), -100)
        labels[-1] = ids[-1]
        return {"input_ids": ids, "labels": labels}


class TinyGPT(nn.Module):
    def __init__(self, d=128, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(SEQ))

    def forward(self, input_ids, labels=None):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        x = self.blocks(x, mask=self.causal[:t, :t], is_causal=True)
        logits = self.head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitArith(L.LightningModule):
    def __init__(self, lr=1e-3, weight_decay=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.gpt = TinyGPT()

    def forward(self, **batch):
        return self.gpt(**batch)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        pred = out["logits"][:, -2].argmax(-1)
        self.log_dict({"val_loss": out["loss"], "val_acc": (pred == batch["labels"][:, -1]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98),
                                weight_decay=self.hparams.weight_decay)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
        return [opt], [{"scheduler": warm, "interval": "step"}]


@torch.no_grad()
def accuracy(model, pairs):
    batch = [Problems(pairs)[i] for i in range(len(pairs))]
    ids = torch.stack([b["input_ids"] for b in batch])
    pred = model(input_ids=ids)["logits"][:, -2].argmax(-1)
    return float((pred == ids[:, -1]).float().mean())


def main():
    L.seed_everything(47)
    g = torch.Generator().manual_seed(47)
    draws = torch.randint(0, P, (6000, 2), generator=g).tolist()
    train_set, val_set = random_split(Problems(draws), [0.8, 0.2], generator=torch.Generator().manual_seed(0))

    model = LitArith()
    trainer = L.Trainer(max_steps=350, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_set, batch_size=128, shuffle=True), DataLoader(val_set, batch_size=600))

    model.eval()
    train_pairs = {tuple(draws[i]) for i in train_set.indices}
    val_pairs = [draws[i] for i in val_set.indices]
    unseen = [p for p in val_pairs if tuple(p) not in train_pairs]
    print(f"SYMPTOM val_in_train_fraction={1 - len(unseen) / len(val_pairs):.3f}")
    print(f"SYMPTOM val_acc={accuracy(model, val_pairs):.3f}")
    print(f"SYMPTOM val_acc_unseen_problems={accuracy(model, unseen):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
