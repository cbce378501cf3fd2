"""Healthy: token tagging with an HF-style dict-batch encoder. Inputs are strings over `( ) [ ]` and the letters a-e
(random well-nested bracket structure with letters in between, 6-30 tokens), prefixed with a `[CLS]` token; the tag
of each token is its nesting depth (0..4). A 2-layer bidirectional Transformer encoder with learned positions reads
`input_ids` with `attention_mask`, returns an output object with `.loss` and `.logits`; the loss is token-level
cross-entropy with `labels = -100` on `[CLS]` and padding. AdamW, linear warm-up then linear decay per step,
gradient clipping, dropout 0.1.

Why it is correct: a tagger may look at the whole sentence, so bidirectional attention is the right choice here (the
labels are not the inputs and nothing is generated left to right); padding is masked both from attention
(`src_key_padding_mask`) and from the loss; the class imbalance (depth 0 and 1 are most frequent) is real and the
initial loss matches the uniform prior over 5 tags. Measured: val loss ln 5 = 1.61 -> 0.74, token accuracy 0.66
after this short run."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
TOKENS = ["[PAD]", "[CLS]", "(", ")", "[", "]", "a", "b", "c", "d", "e"]
TOK = {t: i for i, t in enumerate(TOKENS)}
PAIRS = {"(": ")", "[": "]"}


def sentences(n, g):
    out = []
    for _ in range(n):
        length, toks, tags, stack = int(torch.randint(6, 31, (1,), generator=g)), [], [], []
        while len(toks) + len(stack) < length:
            r = float(torch.rand(1, generator=g))
            if r < 0.3 and len(stack) < 4:
                b = "([" [int(torch.randint(0, 2, (1,), generator=g))]
                tags.append(len(stack))
                stack.append(b)
                toks.append(b)
            elif r < 0.5 and stack:
                toks.append(PAIRS[stack.pop()])
                tags.append(len(stack))
            else:
                toks.append("abcde"[int(torch.randint(0, 5, (1,), generator=g))])
                tags.append(len(stack))
        while stack:
            toks.append(PAIRS[stack.pop()])
            tags.append(len(stack))
        out.append(([TOK["[CLS]"]] + [TOK[t] for t in toks], [-100] + tags))
    return out


def collate(rows):
    width = max(len(r[0]) for r in rows)
    ids, labels = torch.zeros(len(rows), width, dtype=torch.long), torch.full((len(rows), width), -100)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)] = torch.tensor(x), torch.tensor(y)
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


@dataclass
class TokenClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class DepthTagger(L.LightningModule):
    def __init__(self, d=64, tags=5, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb, self.pos = nn.Embedding(len(TOKENS), d, padding_idx=0), nn.Embedding(40, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, tags)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        logits = self.classifier(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return TokenClassifierOutput(loss, logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        keep = batch["labels"] != -100
        acc = (out.logits.argmax(-1) == batch["labels"])[keep].float().mean()
        self.log_dict({"val_loss": out.loss, "val_token_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, 25

        def lr_lambda(s):
            return (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(2408)
    g = torch.Generator().manual_seed(17)
    train, val = sentences(2000, g), sentences(400, g)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DepthTagger(), DataLoader(train, batch_size=48, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
