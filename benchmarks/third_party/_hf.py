"""Shared parts of the third-party scenarios: real HuggingFace ``transformers`` models (tiny configs, random
init, nothing downloaded) trained the way their users train them, on synthetic data with a learnable rule.

Each scenario script builds its data and model here, with one switch for its bug, and calls :func:`fit`.
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch.utils.data import DataLoader

import lightning_sanity

# The scenarios build their model before calling `fit`: seeded here, at import, so that its initialisation is the
# same in every run (unseeded, a BART reversal run stalled at the baseline with some draws and learned with others).
L.seed_everything(0)


def tokens(n: int, seed: int, vocab: int = 64, length: int = 32, pad_labels: bool = False,
           preshift: bool = False) -> list[dict]:
    """Noisy arithmetic progressions of token ids, right-padded with id 0; ``labels`` as an LM collate makes them."""
    g = torch.Generator().manual_seed(seed)
    start, step = torch.randint(1, vocab, (n, 1), generator=g), torch.randint(1, 4, (n, 1), generator=g)
    ids = (start + step * torch.arange(length)) % (vocab - 1) + 1
    ids = torch.where(torch.rand(n, length, generator=g) < 0.1, torch.randint(1, vocab, (n, length), generator=g), ids)
    items = []
    for i in range(n):
        keep = 12 + (i * 7) % (length - 12)
        mask = (torch.arange(length) < keep).long()
        x = ids[i].masked_fill(mask == 0, 0)
        labels = x.clone() if pad_labels else x.masked_fill(mask == 0, -100)
        if preshift:
            labels = torch.cat([labels[1:], labels.new_tensor([-100])])
        items.append({"input_ids": x, "attention_mask": mask, "labels": labels})
    return items


def sentences(n: int, seed: int, vocab: int = 50, length: int = 24) -> list[dict]:
    """Padded token sequences; the label says whether at least 4 of the first 8 tokens are below 25."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g)
    lens = torch.randint(8, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None] < lens[:, None]).long()
    ids = ids * mask
    y = (ids[:, :8] < 25).sum(1).ge(4).long()
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": y[i]} for i in range(n)]


def reversals(n: int, seed: int, vocab: int = 40, length: int = 12) -> list[dict]:
    """Seq2seq: the target is the source reversed."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (n, length), generator=g)
    return [{"input_ids": s, "attention_mask": torch.ones(length, dtype=torch.long), "labels": s.flip(0)} for s in src]


def tags(n: int, seed: int, vocab: int = 40, length: int = 20) -> list[dict]:
    """Token classification on padded sequences: a token's tag is 1 where it is larger than the token before it."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g)
    lens = torch.randint(8, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None] < lens[:, None]).long()
    ids = ids * mask
    up = torch.cat([torch.zeros(n, 1, dtype=torch.long), (ids[:, 1:] > ids[:, :-1]).long()], 1)
    labels = up.masked_fill(mask == 0, -100)
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(n)]


def quadrants(n: int, seed: int, size: int = 32) -> list[dict]:
    """Noisy images whose class (0-3) is the bright quadrant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    half = size // 2
    for c in range(4):
        x[y == c, :, (c // 2) * half:(c // 2 + 1) * half, (c % 2) * half:(c % 2 + 1) * half] += 1.0
    return [{"pixel_values": x[i], "labels": y[i]} for i in range(n)]


class HFModule(L.LightningModule):
    """``self.model(**batch)`` with the loss inside the model, AdamW, linear warm-up and decay per step."""

    def __init__(self, model: torch.nn.Module, lr: float, eval_in_step: bool = False) -> None:
        super().__init__()
        self.model, self.lr, self.eval_in_step = model, lr, eval_in_step

    def forward(self, **batch: Any) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.eval_in_step:
            self.model.eval()
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(**batch)
        self.log("val_loss", out.loss)
        if out.logits.dim() == 2:
            self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self) -> Any:
        import transformers

        trainable = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.lr)
        total = self.trainer.estimated_stepping_batches
        sched = transformers.get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def fit(model: torch.nn.Module, data: Callable[..., list], lr: float, epochs: int, **module_kwargs: Any) -> None:
    """Train ``model`` on ``data`` (1024 training, 256 validation samples) with every check on."""
    L.seed_everything(0)
    train = DataLoader(data(1024, 1), batch_size=32, shuffle=True)
    val = DataLoader(data(256, 2), batch_size=64)
    trainer = L.Trainer(max_epochs=epochs, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        log_every_n_steps=10)
    trainer.fit(HFModule(model, lr, **module_kwargs), train, val)
    print({k: round(float(v), 3) for k, v in trainer.callback_metrics.items()})
    print(f"LOG_DIR={trainer.log_dir}")
