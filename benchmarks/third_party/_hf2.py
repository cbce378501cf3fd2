"""More shared parts of the third-party scenarios: synthetic log-mel, segmentation and image-text data with
a learnable rule, and a module that logs each model's own validation metric.

Usage::

    from _hf2 import fit_scored, token_accuracy
    fit_scored(model, tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True))
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from _hf import HFModule
from torch.utils.data import DataLoader

import lightning_sanity


def mel_notes(n: int, seed: int, bins: int = 16, frames: int = 64) -> list[dict]:
    """Log-mel-like input ``(bins, frames)``: 4-7 tokens (3..18), each a bright band at mel bin ``token - 3`` over
    its own 8-frame segment, on noise. Labels: the tokens then end-of-sequence (2), padded with -100."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        k = int(torch.randint(4, 8, (1,), generator=g))
        toks = torch.randint(3, 3 + bins, (k,), generator=g)
        x = torch.randn(bins, frames, generator=g) * 0.3 - 0.5
        for j, t in enumerate(toks.tolist()):
            x[t - 3, j * 8:(j + 1) * 8] += 1.5
        labels = torch.full((9,), -100, dtype=torch.long)
        labels[:k] = toks
        labels[k] = 2
        items.append({"input_features": x, "labels": labels})
    return items


def rectangles(n: int, seed: int, size: int = 32, ignore: int = 255) -> list[dict]:
    """Noisy images with one rectangle whose class (1-3) is its bright colour channel; background is class 0.
    Per-pixel labels, the rectangle's one-pixel border ring set to ``ignore`` (as VOC/ADE annotations do)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        x = torch.randn(3, size, size, generator=g) * 0.3
        y = torch.zeros(size, size, dtype=torch.long)
        c = int(torch.randint(1, 4, (1,), generator=g))
        h, w = (int(v) for v in torch.randint(8, 17, (2,), generator=g))
        top, left = int(torch.randint(0, size - h + 1, (1,), generator=g)), int(torch.randint(0, size - w + 1, (1,),
                                                                                              generator=g))
        x[c - 1, top:top + h, left:left + w] += 1.0
        ring = torch.zeros(size, size, dtype=torch.bool)
        ring[max(top - 1, 0):top + h + 1, max(left - 1, 0):left + w + 1] = True
        ring[top + 1:top + h - 1, left + 1:left + w - 1] = False
        y[top:top + h, left:left + w] = c
        y[ring] = ignore
        items.append({"pixel_values": x, "labels": y})
    return items


def captions(n: int, seed: int, size: int = 32, vocab: int = 64, noise: float = 0.1) -> list[dict]:
    """Image-text pairs: a bright 8x8 square in one of 16 cells and one of 3 colour channels; its caption is
    ``[bos, cell token, colour token, eos]`` (bos 62, eos 63, cells 3..18, colours 20..22), 48 meanings."""
    g = torch.Generator().manual_seed(seed)
    cell = torch.randint(0, 16, (n,), generator=g)
    colour = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) * noise
    for i in range(n):
        r, c = int(cell[i]) // 4 * 8, int(cell[i]) % 4 * 8
        x[i, int(colour[i]), r:r + 8, c:c + 8] += 1.5
    ids = torch.stack([torch.full((n,), vocab - 2), cell + 3, colour + 20, torch.full((n,), vocab - 1)], 1)
    return [{"pixel_values": x[i], "input_ids": ids[i], "attention_mask": torch.ones(4, dtype=torch.long)}
            for i in range(n)]


def token_accuracy(shift: bool) -> Callable[[Any, dict], torch.Tensor]:
    """Argmax accuracy on the labelled positions; ``shift`` for causal LMs (logit t predicts label t + 1)."""
    def metric(out: Any, batch: dict) -> torch.Tensor:
        logits, labels = out.logits, batch["labels"]
        if shift:
            logits, labels = logits[:, :-1], labels[:, 1:]
        keep = labels != -100
        return (logits.argmax(-1)[keep] == labels[keep]).float().mean()
    return metric


def pixel_accuracy(out: Any, batch: dict, ignore: int = 255) -> torch.Tensor:
    """Per-pixel accuracy of the logits upsampled to the label size, on the pixels not marked ``ignore``."""
    labels = batch["labels"]
    logits = F.interpolate(out.logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    keep = labels != ignore
    return (logits.argmax(1)[keep] == labels[keep]).float().mean()


def retrieval_accuracy(out: Any, batch: dict) -> torch.Tensor:
    """Image-to-text retrieval in the batch: the best-scoring caption means the same as the image's own."""
    best = out.logits_per_image.argmax(-1)
    return (batch["input_ids"][best] == batch["input_ids"]).all(-1).float().mean()


class ScoredModule(HFModule):
    """:class:`_hf.HFModule` that also logs ``metric(out, batch)`` as ``val_<metric_name>``; ``forward_kwargs`` go to
    every model call (e.g. ``return_loss=True`` for CLIP)."""

    def __init__(self, model: torch.nn.Module, lr: float, metric: Callable[[Any, dict], torch.Tensor],
                 metric_name: str = "metric", forward_kwargs: dict | None = None, **kwargs: Any) -> None:
        super().__init__(model, lr, **kwargs)
        self.metric, self.metric_name, self.forward_kwargs = metric, metric_name, forward_kwargs or {}

    def forward(self, **batch: Any) -> Any:
        return self.model(**batch, **self.forward_kwargs)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log(f"val_{self.metric_name}", self.metric(out, batch))


def fit_scored(model: torch.nn.Module, data: Callable[..., list], lr: float, epochs: int,
               module: type = ScoredModule, batch_size: int = 32, **module_kwargs: Any) -> None:
    """:func:`_hf.fit` with a :class:`ScoredModule` (or ``module``): 1024 training, 256 validation samples."""
    L.seed_everything(0)
    train = DataLoader(data(1024, 1), batch_size=batch_size, shuffle=True)
    val = DataLoader(data(256, 2), batch_size=64)
    trainer = L.Trainer(max_epochs=epochs, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        log_every_n_steps=10)
    trainer.fit(module(model, lr, **module_kwargs), train, val)
    print({k: round(float(v), 3) for k, v in trainer.callback_metrics.items()})
    print(f"LOG_DIR={trainer.log_dir}")
