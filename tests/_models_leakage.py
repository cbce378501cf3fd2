"""Sequence and tabular models, leaky and sound, for the causal-leakage and target-leakage tests."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.demos import Transformer
from lightning.pytorch.demos.transformer import LightningTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

VOCAB, SEQ = 24, 16


def random_tokens(n: int, seed: int, vocab: int = VOCAB, length: int = SEQ + 1) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def motif_tokens(n: int, seed: int, vocab: int = VOCAB, length: int = SEQ + 1) -> torch.Tensor:
    """Token streams a causal model can learn: each sequence counts up by a fixed step modulo ``vocab``."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    return (start + step * torch.arange(length)) % vocab


def shifted_loader(seq: torch.Tensor, batch_size: int = 16, shuffle: bool = True) -> DataLoader:
    """``(inputs, targets)`` with the targets the inputs shifted by one."""
    gen = torch.Generator().manual_seed(0) if shuffle else None
    return DataLoader(TensorDataset(seq[:, :-1], seq[:, 1:]), batch_size=batch_size, shuffle=shuffle, generator=gen)


# --------------------------------------------------------------------------- Lightning's demo Transformer


class DemoTransformerLM(LightningTransformer):
    """``lightning.pytorch.demos.LightningTransformer`` as its demo trains it, without the WikiText2 download."""

    def __init__(self, vocab_size: int = VOCAB) -> None:
        super().__init__(vocab_size=vocab_size)
        self.model = Transformer(vocab_size=vocab_size, ninp=32, nhead=2, nhid=64, nlayers=1, dropout=0.1)

    def prepare_data(self) -> None:
        pass

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        inputs, target = batch
        self.log("val_loss", F.nll_loss(self(inputs, target), target.view(-1)))


class ClosedTransformer(Transformer):
    """The demo Transformer with its leaks closed: causal masks on the encoder, the decoder and the memory, and the
    decoder fed the inputs (the target shifted right) instead of the target."""

    def forward(self, inputs: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = inputs.shape[1]
        causal = self.generate_square_subsequent_mask(t).to(inputs.device)
        src = self.pos_encoder(self.embedding(inputs) * math.sqrt(self.ninp))
        output = self.transformer(src, src, src_mask=causal, tgt_mask=causal, memory_mask=causal)
        return F.log_softmax(self.decoder(output), dim=-1).view(-1, self.vocab_size)


class ClosedDemoLM(DemoTransformerLM):
    def __init__(self, vocab_size: int = VOCAB) -> None:
        super().__init__(vocab_size)
        self.model = ClosedTransformer(vocab_size=vocab_size, ninp=32, nhead=2, nhid=64, nlayers=1, dropout=0.1)


# --------------------------------------------------------------------------- decoder-only LM (plain torch)


class DecoderLM(L.LightningModule):
    """A GPT-like LM on ``nn.TransformerEncoder``: ``causal=False`` forgets the mask; ``shift_in_step`` takes
    ``(seq, seq)`` batches and shifts in ``training_step``."""

    def __init__(self, causal: bool = True, vocab: int = VOCAB, lr: float = 3e-3, shift_in_step: bool = False) -> None:
        super().__init__()
        self.causal, self.lr, self.shift_in_step = causal, lr, shift_in_step
        self.embed = nn.Embedding(vocab, 32)
        self.pos = nn.Parameter(torch.randn(SEQ, 32) * 0.1)
        layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.head = nn.Linear(32, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        h = self.embed(ids) + self.pos[:t]
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=ids.device) if self.causal else None
        return self.head(self.encoder(h, mask=mask, is_causal=self.causal))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self(x)
        if self.shift_in_step:  # batches of (seq, seq): the step shifts, as in-model shifting does
            out, y = out[:, :-1], y[:, 1:]
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten())
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


# --------------------------------------------------------------------------- HuggingFace-style causal LM


class DictTokens(Dataset):
    def __init__(self, seq: torch.Tensor) -> None:
        self.seq = seq

    def __len__(self) -> int:
        return len(self.seq)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.seq[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


class TinyCausalLM(nn.Module):
    """HuggingFace-style: ``model(input_ids, attention_mask, labels)`` returns an object with ``.logits`` and
    ``.loss``, the loss shifted inside (``shift=False`` forgets to shift: each position is scored on its own
    token)."""

    def __init__(self, causal: bool = True, shift: bool = True, vocab: int = VOCAB) -> None:
        super().__init__()
        self.causal, self.shift = causal, shift
        self.embed = nn.Embedding(vocab, 32)
        self.pos = nn.Embedding(64, 32)
        layer = nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2)
        self.lm_head = nn.Linear(32, vocab)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None) -> SimpleNamespace:
        t = input_ids.shape[1]
        h = self.embed(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=h.device) if self.causal else None
        logits = self.lm_head(self.blocks(h, mask=mask, is_causal=self.causal))
        loss = None
        if labels is not None:
            if self.shift:
                loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
            else:
                loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return SimpleNamespace(loss=loss, logits=logits)


class HFStyleLM(L.LightningModule):
    def __init__(self, causal: bool = True, shift: bool = True, lr: float = 3e-3) -> None:
        super().__init__()
        self.model = TinyCausalLM(causal, shift)
        self.lr = lr

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


# --------------------------------------------------------------------------- GRU seq2seq


class GRUSeq2Seq(L.LightningModule):
    """Reverses a token sequence; the decoder gets teacher forcing, shifted right by a start token (or, with
    ``shift=False``, the target itself)."""

    def __init__(self, shift: bool = True, vocab: int = VOCAB) -> None:
        super().__init__()
        self.shift, self.bos = shift, vocab
        self.embed = nn.Embedding(vocab + 1, 32)
        self.encoder = nn.GRU(32, 48, batch_first=True)
        self.decoder = nn.GRU(32, 48, batch_first=True)
        self.head = nn.Linear(48, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        _, h = self.encoder(self.embed(src))
        if self.shift:
            tgt = torch.cat([torch.full_like(tgt[:, :1], self.bos), tgt[:, :-1]], dim=1)
        out, _ = self.decoder(self.embed(tgt), h)
        return self.head(out)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        src, tgt = batch
        loss = F.cross_entropy(self(src, tgt).flatten(0, 1), tgt.flatten())
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def reverse_loader(n: int = 128, seed: int = 0) -> DataLoader:
    src = random_tokens(n, seed, length=SEQ)
    return DataLoader(TensorDataset(src, src.flip(1)), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- causal Conv1d forecaster


class ConvForecaster(L.LightningModule):
    """Predicts the next value of a series at every position; ``causal=False`` pads symmetrically."""

    def __init__(self, causal: bool = True, kernel: int = 5) -> None:
        super().__init__()
        self.causal, self.kernel = causal, kernel
        self.conv1 = nn.Conv1d(1, 16, kernel)
        self.conv2 = nn.Conv1d(16, 1, kernel)

    def _pad(self, h: torch.Tensor) -> torch.Tensor:
        k = self.kernel - 1
        return F.pad(h, (k, 0) if self.causal else (k // 2, k - k // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(self._pad(x[:, None])))
        return self.conv2(self._pad(h))[:, 0]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def series_loader(n: int = 128, length: int = 32, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length + 1).float()
    phase = torch.rand(n, 1, generator=g) * 6.28
    freq = 0.2 + 0.3 * torch.rand(n, 1, generator=g)
    s = torch.sin(freq * t + phase) + 0.05 * torch.randn(n, length + 1, generator=g)
    return DataLoader(TensorDataset(s[:, :-1], s[:, 1:]), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))
