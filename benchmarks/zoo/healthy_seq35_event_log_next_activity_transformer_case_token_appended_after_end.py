"""Healthy: next-activity prediction on a synthetic process-mining event log (order-to-cash style traces: 14
activities, each with 3 weighted successors, ending at END; 8-22 events per case), plus a case-level head ("does
this case contain rework?"). A small Transformer reads HF-style dict batches (`input_ids`/`attention_mask`/
`labels`, labels already shifted by one, pads at -100) and returns an output object with `.logits`. The summary
token that feeds the case head is appended *after* END rather than prepended with global attention, and the mask
is purely causal: the [CASE] position sees the whole trace, but no position attends to anything after itself, so
no activity prediction can read the future through it. The target "next token is [CASE]" is set to -100 (it is
not an activity). Validation next-activity CE 0.95 for this branching process, and the case head is near
perfect, as it should be: it reads the full trace, which determines the answer."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout35"
PAD, BOS, END, CASE, N_ACT = 0, 1, 2, 3, 14
VOCAB, MAXLEN = N_ACT + 4, 24
REWORK = 7


def event_log(g, n_cases):
    succ = torch.randint(4, VOCAB, (VOCAB, 3), generator=g)
    probs = torch.softmax(torch.randn(VOCAB, 3, generator=g), 1)
    cases = []
    for _ in range(n_cases):
        trace, act = [BOS], 4
        length = int(torch.randint(8, 22, (1,), generator=g))
        for _ in range(length):
            trace.append(act)
            act = int(succ[act, torch.multinomial(probs[act], 1, generator=g)])
        cases.append(trace + [END, CASE])
    return cases


def collate(cases):
    ids = torch.full((len(cases), MAXLEN + 1), PAD)
    for i, c in enumerate(cases):
        ids[i, :len(c)] = torch.tensor(c)
    labels = ids[:, 1:].masked_fill((ids[:, 1:] == PAD) | (ids[:, 1:] == CASE), -100)
    return {"input_ids": ids[:, :-1], "attention_mask": (ids[:, :-1] != PAD).long(), "labels": labels,
            "rework": (ids == REWORK).any(1).float()}


@dataclass
class TraceOutput:
    logits: torch.Tensor
    case_logit: torch.Tensor


class NextActivityTransformer(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAXLEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.lm_head = nn.Linear(d, VOCAB)
        self.case_head = nn.Linear(d, 1)
        pos = torch.arange(MAXLEN)
        self.register_buffer("blocked", pos[:, None] < pos[None, :])

    def forward(self, input_ids, attention_mask):
        x = self.emb(input_ids) + self.pos.weight[: input_ids.size(1)]
        h = self.encoder(x, mask=self.blocked, src_key_padding_mask=attention_mask == 0)
        last = attention_mask.sum(1) - 1
        return TraceOutput(self.lm_head(h), self.case_head(h[torch.arange(h.size(0)), last]).squeeze(-1))

    def _losses(self, batch):
        out = self(batch["input_ids"], batch["attention_mask"])
        lm = F.cross_entropy(out.logits.reshape(-1, VOCAB), batch["labels"].reshape(-1), ignore_index=-100)
        case = F.binary_cross_entropy_with_logits(out.case_logit, batch["rework"])
        return lm, case

    def training_step(self, batch, batch_idx):
        lm, case = self._losses(batch)
        loss = lm + 0.3 * case
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        lm, case = self._losses(batch)
        self.log("val_loss", lm)
        self.log("val_case_bce", case)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(3521)
    cases = event_log(torch.Generator().manual_seed(3521), 1500)
    train, val = cases[:1200], cases[1200:]
    model = NextActivityTransformer()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=100, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_next_activity_ce={m['val_loss'].item():.3f} val_case_bce={m['val_case_bce'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
