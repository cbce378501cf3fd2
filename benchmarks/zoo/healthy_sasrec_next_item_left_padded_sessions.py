"""Healthy: SASRec-style sequential recommender written the HuggingFace way (a config dataclass, dict batches with
LEFT-padded `input_ids` / `attention_mask` and `labels` = the next click with -100 on padding, loss inside the
model, an output object with `.loss` / `.logits`, `_init_weights` with normal(0, 0.02) as `post_init` does): item
embeddings scaled by sqrt(d) plus learned positions, two pre-LN `nn.TransformerEncoderLayer` blocks with the causal
mask, padding positions zeroed by the "timeline" mask after every block as the SASRec reference code does, logits =
dot products with the shared item embedding table. Synthetic sessions of 5-20 clicks over 100 items: each item has 4
likely successors (80 %) or the user jumps to a random item. Adam with a linear warm-up (`LinearLR`, per step),
gradient clipping, `max_steps=240` with validation every 60 steps (`val_check_interval`). Validation: next-item loss
and HR@10 of the last click. Reaches val loss 2.64, val HR@10 0.79 (random: HR 0.10; the successor structure caps HR
near 0.81 and the loss near 2.5)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"
ITEMS, MAXLEN = 100, 20


@dataclass
class SASRecConfig:
    num_items: int = ITEMS
    hidden_size: int = 64
    num_attention_heads: int = 2
    num_hidden_layers: int = 2
    hidden_dropout_prob: float = 0.2
    max_position_embeddings: int = MAXLEN
    pad_token_id: int = 0
    initializer_range: float = 0.02


@dataclass
class SequentialRecOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


def sessions(n, seed):
    g = torch.Generator().manual_seed(seed)
    succ = torch.randint(1, ITEMS + 1, (ITEMS + 1, 4), generator=torch.Generator().manual_seed(0))
    out = []
    for _ in range(n):
        k = int(torch.randint(5, MAXLEN + 2, (1,), generator=g))
        s = [int(torch.randint(1, ITEMS + 1, (1,), generator=g))]
        for _ in range(k - 1):
            if torch.rand(1, generator=g) < 0.8:
                s.append(int(succ[s[-1], torch.randint(0, 4, (1,), generator=g)]))
            else:
                s.append(int(torch.randint(1, ITEMS + 1, (1,), generator=g)))
        out.append(s)
    return out


class SessionDataset(Dataset):
    """Left-padded `input_ids` / `attention_mask`, `labels` = next click (-100 on padding)."""

    def __init__(self, sessions):
        self.sessions = sessions

    def __len__(self):
        return len(self.sessions)

    def __getitem__(self, i):
        s = torch.tensor(self.sessions[i])
        ids = torch.zeros(MAXLEN, dtype=torch.long)
        labels = torch.full((MAXLEN,), -100)
        ids[MAXLEN - len(s) + 1:] = s[:-1]
        labels[MAXLEN - len(s) + 1:] = s[1:]
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


class SASRecModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.item_embeddings = nn.Embedding(config.num_items + 1, d, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, config.num_attention_heads, 2 * d, config.hidden_dropout_prob,
                                       batch_first=True, norm_first=True)
            for _ in range(config.num_hidden_layers))
        self.final_layernorm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def forward(self, input_ids, attention_mask, labels=None):
        t = input_ids.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=input_ids.device), 1)
        timeline = attention_mask.unsqueeze(-1).float()
        h = self.item_embeddings(input_ids) * self.config.hidden_size ** 0.5
        h = self.dropout(h + self.position_embeddings.weight[:t]) * timeline
        for block in self.blocks:
            h = block(h, src_mask=causal) * timeline
        logits = self.final_layernorm(h) @ self.item_embeddings.weight.T
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        return SequentialRecOutput(loss=loss, logits=logits)


class SASRecModule(L.LightningModule):
    def __init__(self, lr=5e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.model = SASRecModel(SASRecConfig())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss, prog_bar=True)
        top = out.logits[:, -1, 1:].topk(10, dim=-1).indices + 1
        self.log("val_hr10", (top == batch["labels"][:, -1:]).any(-1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=self.hparams.warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(611)
    train = DataLoader(SessionDataset(sessions(1500, seed=1)), batch_size=64, shuffle=True)
    val = DataLoader(SessionDataset(sessions(400, seed=2)), batch_size=200)
    trainer = L.Trainer(max_steps=240, val_check_interval=60, check_val_every_n_epoch=None, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SASRecModule(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_HR@10={m['val_hr10']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
