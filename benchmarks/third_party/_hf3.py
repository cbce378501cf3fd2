"""Round-9 shared parts of the third-party scenarios: synthetic audio for CTC, multiple-choice and extractive-QA
data with a learnable rule, and their own metrics.

Usage::

    from _hf2 import fit_scored
    from _hf3 import ctc_exact_match, tones
    fit_scored(model, tones, lr=1e-3, epochs=6, metric=ctc_exact_match, metric_name="exact")
"""

from __future__ import annotations

import math
from typing import Any

import torch


def tones(n: int, seed: int, segment: int = 80, max_tokens: int = 5, vocab: int = 10) -> list[dict]:
    """A 16 kHz-like waveform of 3-5 tones, one per ``segment`` samples, tone ``t`` (1..vocab-1) at its own
    frequency, on noise, normalised to zero mean and unit variance as ``Wav2Vec2FeatureExtractor`` does. Shorter
    clips are zero-padded (``attention_mask`` 0); labels are the tone ids padded with -100 (0 is the CTC blank)."""
    g = torch.Generator().manual_seed(seed)
    length = segment * max_tokens
    t = torch.arange(segment, dtype=torch.float32)
    items = []
    for _ in range(n):
        k = int(torch.randint(3, max_tokens + 1, (1,), generator=g))
        toks = torch.randint(1, vocab, (k,), generator=g)
        parts = [torch.sin(2 * math.pi * (0.02 + 0.035 * int(c)) * t + float(torch.rand(1, generator=g)) * 6.28)
                 for c in toks]
        x = torch.cat(parts) + 0.3 * torch.randn(k * segment, generator=g)
        x = (x - x.mean()) / (x.std() + 1e-7)
        values, mask = torch.zeros(length), torch.zeros(length, dtype=torch.long)
        values[:k * segment], mask[:k * segment] = x, 1
        labels = torch.full((max_tokens,), -100, dtype=torch.long)
        labels[:k] = toks
        items.append({"input_values": values, "attention_mask": mask, "labels": labels})
    return items


def ctc_exact_match(out: Any, batch: dict, blank: int = 0) -> torch.Tensor:
    """Greedy CTC decoding (collapse repeats, drop blanks): share of clips transcribed exactly."""
    best = out.logits.argmax(-1)
    hits = []
    for row, labels in zip(best.tolist(), batch["labels"].tolist()):
        decoded = [c for i, c in enumerate(row) if c != blank and (i == 0 or c != row[i - 1])]
        hits.append(decoded == [c for c in labels if c != -100])
    return torch.tensor(hits, dtype=torch.float32).mean()


def choices(n: int, seed: int, num_choices: int = 4, vocab: int = 60, context: int = 8) -> list[dict]:
    """Multiple choice, SWAG-like ``(choices, seq)`` per sample: ``[CLS] context [SEP] ending [SEP]`` with token types;
    the right ending repeats the context's first 3 tokens; the wrong ones are random."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        ctx = torch.randint(5, vocab, (context,), generator=g)
        label = int(torch.randint(0, num_choices, (1,), generator=g))
        rows = []
        for c in range(num_choices):
            ending = ctx[:3] if c == label else torch.randint(5, vocab, (3,), generator=g)
            rows.append(torch.cat([torch.tensor([1]), ctx, torch.tensor([2]), ending, torch.tensor([2])]))
        ids = torch.stack(rows)
        types = torch.zeros_like(ids)
        types[:, context + 2:] = 1
        items.append({"input_ids": ids, "token_type_ids": types, "attention_mask": torch.ones_like(ids),
                      "labels": torch.tensor(label)})
    return items


def spans(n: int, seed: int, vocab: int = 60, context: int = 24) -> list[dict]:
    """Extractive QA, SQuAD-like: ``[CLS] q [SEP] context [SEP] pad``; the question is one key token, found once in
    the context, and the answer is the 1-3 tokens after it up to the next marker token 4. Right-padded contexts."""
    g = torch.Generator().manual_seed(seed)
    items = []
    total = context + 4
    for _ in range(n):
        length = int(torch.randint(context // 2, context + 1, (1,), generator=g))
        ctx = torch.randint(10, vocab, (length,), generator=g)
        key = int(torch.randint(5, 10, (1,), generator=g))
        at = int(torch.randint(0, length - 4, (1,), generator=g))
        span = int(torch.randint(1, 4, (1,), generator=g))
        ctx[at] = key
        if at + 1 + span < length:
            ctx[at + 1 + span] = 4
        ids = torch.zeros(total, dtype=torch.long)
        seq = torch.cat([torch.tensor([1, key, 2]), ctx, torch.tensor([2])])
        ids[:len(seq)] = seq
        types = torch.zeros(total, dtype=torch.long)
        types[3:len(seq)] = 1
        mask = (ids != 0).long()
        start = 3 + at + 1  # [CLS] q [SEP] come before the context
        end = min(start + span - 1, 3 + length - 1)
        items.append({"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
                      "start_positions": torch.tensor(start), "end_positions": torch.tensor(end)})
    return items


def span_exact_match(out: Any, batch: dict) -> torch.Tensor:
    """Share of questions whose argmax start and end are both right."""
    return ((out.start_logits.argmax(-1) == batch["start_positions"])
            & (out.end_logits.argmax(-1) == batch["end_positions"])).float().mean()


def choice_accuracy(out: Any, batch: dict) -> torch.Tensor:
    """Share of samples whose best-scoring choice is the labelled one."""
    return (out.logits.argmax(-1) == batch["labels"]).float().mean()


def fit_with(model: torch.nn.Module, data: Any, lr: float, epochs: int, callbacks: list, module: Any = None,
             batch_size: int = 32, **module_kwargs: Any) -> None:
    """:func:`_hf2.fit_scored` with the user's own callbacks (e.g. Lightning's ``BaseFinetuning``) next to the suite."""
    import lightning as L
    from _hf2 import ScoredModule
    from torch.utils.data import DataLoader

    import lightning_sanity

    L.seed_everything(0)
    train = DataLoader(data(1024, 1), batch_size=batch_size, shuffle=True)
    val = DataLoader(data(256, 2), batch_size=64)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[*callbacks, *lightning_sanity.default_callbacks()],
                        accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=".", log_every_n_steps=10)
    trainer.fit((module or ScoredModule)(model, lr, **module_kwargs), train, val)
    print({k: round(float(v), 3) for k, v in trainer.callback_metrics.items()})
    print(f"LOG_DIR={trainer.log_dir}")


def colours(n: int, seed: int, size: int = 32) -> list[dict]:
    """Noisy images with one 8x8 square anywhere: class 0-2 when the square is bright in that colour channel, 3 when
    it is dark in all three; a rule that does not depend on where the square is."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    at = torch.randint(0, size - 8, (n, 2), generator=g)
    for i in range(n):
        r, c = int(at[i, 0]), int(at[i, 1])
        if int(y[i]) < 3:
            x[i, int(y[i]), r:r + 8, c:c + 8] += 1.5
        else:
            x[i, :, r:r + 8, c:c + 8] -= 1.5
    return [{"pixel_values": x[i], "labels": y[i]} for i in range(n)]
