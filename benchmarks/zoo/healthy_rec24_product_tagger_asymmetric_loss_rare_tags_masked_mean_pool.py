"""Healthy: multi-label tagging of product listings. Synthetic listings (seeded torch.Generator) are 8-30 token
ids from a 600-word vocabulary; each of 16 tags has a few trigger words and tags co-occur through 5 hidden
"product types", so tag frequencies range from ~8 % to ~41 %. Batches are HF-style dicts (`input_ids`,
`attention_mask`, `labels`) from a right-padding collate; the model embeds tokens, runs one small Transformer
encoder layer with a key padding mask, masked-mean-pools and returns an output object with `.logits`.

Why it is correct (and tricky): most tags are rare, so the loss is the Asymmetric Loss (ASL, Ridnik et al.)
with gamma_neg=4, gamma_pos=0 and probability margin 0.05 on negatives, written in log-space (logsigmoid for the
positive term, the shifted negative probability clamped before the log). The classifier bias is initialised to
the training tag priors' log-odds. Padding is excluded both from attention (key_padding_mask=True on pads) and
from the mean pool, so the pooled vector is independent of how much padding the batch needed. Validation uses
macro average precision from torchmetrics, which does not depend on a threshold. Val macro-AP 0.926, where
constant scores would get the mean tag frequency (~0.2)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multilabel_average_precision

import lightning_sanity

EXPECT = None
SPLIT = "heldout24"
VOCAB, N_TAGS, N_TYPES, PAD = 600, 16, 5, 0


def listings(n, g, triggers, type_tags):
    rows = []
    for _ in range(n):
        ptype = int(torch.randint(0, N_TYPES, (1,), generator=g))
        tags = (torch.rand(N_TAGS, generator=g) < type_tags[ptype]).float()
        length = int(torch.randint(8, 31, (1,), generator=g))
        tokens = torch.randint(1, VOCAB, (length,), generator=g)
        for t in tags.nonzero().flatten().tolist():
            pos = torch.randint(0, length, (2,), generator=g)
            tokens[pos] = triggers[t][torch.randint(0, 3, (2,), generator=g)]
        rows.append((tokens, tags))
    return rows


def pad_collate(rows):
    length = max(len(t) for t, _ in rows)
    input_ids = torch.full((len(rows), length), PAD)
    for i, (t, _) in enumerate(rows):
        input_ids[i, :len(t)] = t
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(),
            "labels": torch.stack([y for _, y in rows])}


def asymmetric_loss(logits, labels, gamma_neg=4.0, gamma_pos=0.0, clip=0.05):
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0)
    pos = labels * F.logsigmoid(logits) * (1 - p) ** gamma_pos
    neg = (1 - labels) * torch.log((1 - p_neg).clamp(min=1e-8)) * p_neg ** gamma_neg
    return -(pos + neg).sum(1).mean()


@dataclass
class TaggerOutput:
    logits: torch.Tensor


class ListingTagger(L.LightningModule):
    def __init__(self, prior, dim=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["prior"])
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.encoder = nn.TransformerEncoderLayer(dim, 4, 128, dropout=0.1, batch_first=True)
        self.classifier = nn.Linear(dim, N_TAGS)
        with torch.no_grad():
            self.classifier.bias.copy_(torch.log(prior / (1 - prior)))

    def forward(self, input_ids, attention_mask):
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).float()
        return TaggerOutput(logits=self.classifier((h * mask).sum(1) / mask.sum(1)))

    def training_step(self, batch, batch_idx):
        loss = asymmetric_loss(self(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        self.log("val_loss", asymmetric_loss(logits, batch["labels"]))
        self.log("val_macro_ap", multilabel_average_precision(logits, batch["labels"].long(), num_labels=N_TAGS))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(2410)
    g = torch.Generator().manual_seed(10)
    triggers = torch.randint(1, VOCAB, (N_TAGS, 3), generator=g)
    type_tags = torch.rand(N_TYPES, N_TAGS, generator=g).pow(3) * 0.9
    train, val = listings(2500, g, triggers, type_tags), listings(500, g, triggers, type_tags)
    prior = torch.stack([y for _, y in train]).mean(0).clamp(0.01, 0.99)
    model = ListingTagger(prior)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=pad_collate),
                DataLoader(val, batch_size=250, collate_fn=pad_collate))
    print(f"SYMPTOM val_macro_ap={float(trainer.callback_metrics['val_macro_ap']):.3f} "
          f"tag_freq_min={float(prior.min()):.3f} tag_freq_max={float(prior.max()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
