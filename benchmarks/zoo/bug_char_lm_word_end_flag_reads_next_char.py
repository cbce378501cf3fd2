"""Bug: HuggingFace-style character LM (dict batches, in-model shifted loss, output object with `.loss`/`.logits`) on
a synthetic stream of words from a 40-word lexicon of nested words ("abk", "abkf", ...) separated by spaces. The
collate adds a "word end" flag per character computed as `next character == space`: at position t the model is
handed whether the token it must predict (t+1) is a space, so word boundaries, the hard part of the task, are read
instead of predicted.
Measured: val loss 0.496, space-prediction accuracy 1.000, vs 0.777 / 0.508 with the causal word-start flag
(healthy_char_lm_word_start_feature)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage", "causal-leakage"}
SPLIT = "heldout3"
SPACE, LETTERS, CHUNK = 0, 12, 48


def text_chunks(n, seed):
    lex_g = torch.Generator().manual_seed(99)
    lexicon = []  # 10 stems, each a word alone and with 1, 2 and 3 more letters: "ab", "abk", "abkf", "abkfc"
    for _ in range(10):
        word = torch.randint(1, LETTERS + 1, (6,), generator=lex_g)
        lexicon += [word[:k] for k in range(3, 7)]
    g = torch.Generator().manual_seed(seed)
    pieces, total = [], 0
    while total < n * CHUNK:
        word = lexicon[int(torch.randint(0, 40, (1,), generator=g))]
        pieces += [word, torch.tensor([SPACE])]
        total += len(word) + 1
    return list(torch.cat(pieces)[:n * CHUNK].view(n, CHUNK))


def collate(chunks):
    ids = torch.stack(chunks)
    # BUG: meant "this character ends its word", but reads the NEXT character: the one the model must predict
    following = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], SPACE)], dim=1)
    return {"input_ids": ids, "word_end": (following == SPACE).float(), "labels": ids.clone()}


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class CharLM(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.embed = nn.Embedding(LETTERS + 1, dim)
        self.flag = nn.Linear(1, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.lm_head = nn.Linear(dim, LETTERS + 1)

    def forward(self, input_ids, word_end, labels=None):
        h = self.embed(input_ids) + self.flag(word_end.unsqueeze(-1))
        logits = self.lm_head(self.rnn(h)[0])
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        return LMOutput(logits=logits, loss=loss)


class LitCharLM(L.LightningModule):
    def __init__(self, lr=3e-3, epochs=6):
        super().__init__()
        self.save_hyperparameters()
        self.model = CharLM()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred, target = out.logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
        space_acc = (pred[target == SPACE] == SPACE).float().mean()
        self.log_dict({"val_loss": out.loss, "val_space_acc": space_acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(808)
    train = DataLoader(text_chunks(640, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(text_chunks(160, 1), batch_size=160, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitCharLM(epochs=6), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_space_acc={float(m['val_space_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
