"""Bug: prompt-based fine-tuning of a small GRU language model. The LM is first pretrained (a short plain-PyTorch
phase) on next-token prediction over synthetic token streams; then it is fine-tuned in Lightning as a classifier in
the "verbaliser" style: every example is `tokens ... [SEP] <answer>` with variable length and right padding, the
batch is an HF-style dict (`input_ids`, `attention_mask`, `labels`), and the class logits are the LM-head logits of
the three answer tokens at the position that predicts the answer. The class is which of the tokens 1, 2, 3 occurs
most often in the sequence.

The collate function appends the answer token to `input_ids` (the layout used for generative SFT), and the model picks
the "last real token" with `attention_mask.sum(1) - 1`, which is the answer token itself, not the [SEP] before it. The
hidden state there has just read the answer, so the head learns to copy it: the training loss falls to ~0 and
validation (built by the same collate) reports near-perfect accuracy, while at inference, where the prompt ends at
[SEP], the model knows nothing. Symptom: val acc 1.000 but 0.380 on prompts with the answer removed; reading
the [SEP] position (`attention_mask.sum(1) - 2`) gives an honest val acc of 0.965."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout24"
PAD, SEP, ANSWER0, VOCAB = 0, 21, 22, 25


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class GRULM(nn.Module):
    def __init__(self, d=96):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.lm_head = nn.Linear(d, VOCAB)

    def forward(self, input_ids):
        return self.lm_head(self.gru(self.embed(input_ids))[0])


def make_examples(n, g):
    out = []
    for _ in range(n):
        length = int(torch.randint(8, 17, (1,), generator=g))
        toks = torch.randint(1, 11, (length,), generator=g)
        label = int(torch.bincount(toks, minlength=4)[1:4].argmax())
        out.append((toks, label))
    return out


def collate(examples):
    seqs = [torch.cat([t, torch.tensor([SEP, ANSWER0 + y])]) for t, y in examples]
    ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(),
            "labels": torch.tensor([y for _, y in examples])}


class PromptClassifier(L.LightningModule):
    def __init__(self, lm, lr=3e-3):
        super().__init__()
        self.lm = lm
        self.lr = lr

    def forward(self, input_ids, attention_mask, labels=None):
        pos = attention_mask.sum(1) - 1
        logits = self.lm(input_ids)[torch.arange(len(input_ids)), pos, ANSWER0:ANSWER0 + 3]
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return LMOutput(logits=logits, loss=loss)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss, on_epoch=True)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)


def pretrain(lm, g, steps=150):
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(steps):
        start = torch.randint(1, 11, (32, 1), generator=g)
        stream = (start + torch.arange(20) * torch.randint(1, 3, (32, 1), generator=g)) % 10 + 1
        logits = lm(stream[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), stream[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()


def main():
    L.seed_everything(2402)
    g = torch.Generator().manual_seed(24)
    lm = GRULM()
    pretrain(lm, g)
    train, val = make_examples(2000, g), make_examples(400, g)
    model = PromptClassifier(lm)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    model.eval()
    batch = collate(val)
    prompt_ids = batch["input_ids"].clone()
    prompt_ids[torch.arange(len(val)), batch["attention_mask"].sum(1) - 1] = PAD
    with torch.no_grad():
        out = model(prompt_ids, (prompt_ids != PAD).long())
    acc = (out.logits.argmax(1) == batch["labels"]).float().mean()
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} prompt_only_acc={float(acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
