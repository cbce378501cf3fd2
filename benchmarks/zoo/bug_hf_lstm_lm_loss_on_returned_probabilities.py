"""Bug: a HuggingFace-style LSTM language model (config dataclass, output object with `.loss`/`.logits`, dict
batches `input_ids`/`attention_mask`/`labels` with padding at -100, labels shifted inside the model). The config has
`return_probs=True`, added so that a sampling demo could read probabilities from `.logits`; `forward` applies the
softmax *before* computing the loss, so `F.cross_entropy` is fed probabilities as if they were logits. The loss can
then never fall much below ln(vocab) and the gradients are squashed: val next-token NLL (from the returned
probabilities) 7.18 nats (some true tokens get ~0 probability) vs 1.14 with `return_probs=False` (the same model;
Markov text whose entropy rate is ln 3 = 1.10 after the first token). AdamW with weight-decay groups, linear warm-up
then constant (LambdaLR per step)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout5"


@dataclass
class LSTMLMConfig:
    vocab_size: int = 36
    pad_token_id: int = 0
    hidden_size: int = 96
    num_layers: int = 2
    dropout: float = 0.1
    return_probs: bool = True  # generate() samples from probabilities


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class MarkovText(Dataset):
    def __init__(self, n, seed, vocab=36):
        g = torch.Generator().manual_seed(5)
        table = torch.stack([torch.randperm(vocab - 1, generator=g)[:3] + 1 for _ in range(vocab)])
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(10, 31, (1,), generator=g))
            seq = [int(torch.randint(1, vocab, (1,), generator=g))]
            for _ in range(length - 1):
                seq.append(int(table[seq[-1], int(torch.randint(0, 3, (1,), generator=g))]))
            self.items.append(torch.tensor(seq))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(seqs):
    ids = pad_sequence(seqs, batch_first=True, padding_value=0)
    mask = (ids != 0).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


class LSTMForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.lstm = nn.LSTM(config.hidden_size, config.hidden_size, config.num_layers, batch_first=True,
                            dropout=config.dropout)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, input_ids, attention_mask=None, labels=None):
        h, _ = self.lstm(self.embed_tokens(input_ids))
        logits = self.lm_head(self.norm(h))
        if self.config.return_probs:
            logits = logits.softmax(-1)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.model = LSTMForCausalLM(LSTMLMConfig())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        logp = out.logits.clamp_min(1e-9).log() if self.model.config.return_probs else out.logits.log_softmax(-1)
        nll = F.nll_loss(logp[:, :-1].reshape(-1, logp.shape[-1]), batch["labels"][:, 1:].reshape(-1))
        self.log_dict({"val_loss": out.loss, "val_nll": nll})

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "embed" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        warm = self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5108)
    train = DataLoader(MarkovText(1600, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(MarkovText(256, 1), batch_size=256, collate_fn=collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLM(), train, val)
    print(f"val_nll={float(trainer.callback_metrics['val_nll']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
