"""Bug: a HuggingFace-style causal LM on a 2-layer LSTM (dict batches, labels shifted inside the model, output
with `.loss` / `.logits`) whose in-model loss uses `reduction="sum"`, meant to be divided by the number of real
tokens afterwards, which never happens: the loss and its gradient are 992x (32 x 31 tokens) the per-token mean,
so SGD with lr=1.0 and Nesterov momentum, a sound setting for the mean, takes steps ~1000x too large (no
clipping). Noisy Markov text over 48 tokens, MultiStepLR. Measured: val perplexity inf (mean val cross-entropy
above 88 nats: wildly overconfident logits), val acc 0.420, vs perplexity 2.57 and acc 0.704 with the mean."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"initial-loss", "update-ratio"}
SPLIT = "heldout2"
VOCAB, LENGTH = 48, 32


class MarkovText(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        table = torch.randint(0, VOCAB, (VOCAB, 2), generator=torch.Generator().manual_seed(4))
        seqs = torch.empty(n, LENGTH, dtype=torch.long)
        seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
        for t in range(1, LENGTH):
            r = torch.rand(n, generator=g)
            prev = seqs[:, t - 1]
            seqs[:, t] = torch.where(r < 0.7, table[prev, 0], torch.where(r < 0.95, table[prev, 1],
                                     torch.randint(0, VOCAB, (n,), generator=g)))
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        ids = self.seqs[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class LSTMForCausalLM(nn.Module):
    def __init__(self, dim=96):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.lstm = nn.LSTM(dim, dim, num_layers=2, batch_first=True, dropout=0.1)
        self.lm_head = nn.Linear(dim, VOCAB)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.lm_head(self.lstm(self.embed(input_ids))[0])
        loss = None
        if labels is not None:
            shift_logits, shift_labels = logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1)
            # BUG: summed "to divide by the number of real tokens later"; the division never happens
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
        return CausalLMOutput(loss, logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.model = LSTMForCausalLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        acc = (out.logits[:, :-1].argmax(-1) == batch["labels"][:, 1:]).float().mean()
        self.log("val_ppl", torch.exp(F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB),
                                                       batch["labels"][:, 1:].reshape(-1))))
        self.log("val_acc", acc)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 6], gamma=0.3)]


def main():
    L.seed_everything(2113)
    train = DataLoader(MarkovText(1600, 0), batch_size=32, shuffle=True)
    val = DataLoader(MarkovText(256, 1), batch_size=256)
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLM(), train, val)
    m = trainer.callback_metrics
    print(f"val_ppl={float(m['val_ppl']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
