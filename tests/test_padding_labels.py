"""label-distribution: padded positions whose labels are a real class instead of the loss's ignore_index."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader

_VOCAB, _PAD = 30, 0


def _tagging(n, seed):
    """Variable-length sequences tagged 1 where a token is larger than the one before it (2 at the start)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        seq = torch.randint(1, _VOCAB, (int(torch.randint(5, 20, (1,), generator=g)),), generator=g)
        items.append((seq, torch.cat([torch.tensor([2]), (seq[1:] > seq[:-1]).long()])))
    return items


def _collate(label_pad, as_dict):
    def collate(batch):
        seqs, tags = zip(*batch)
        tokens = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=_PAD)
        labels = nn.utils.rnn.pad_sequence(tags, batch_first=True, padding_value=label_pad)
        if as_dict:
            return {"input_ids": tokens, "attention_mask": (tokens != _PAD).long(), "labels": labels}
        return tokens, labels
    return collate


class _Tagger(L.LightningModule):
    def __init__(self, padding_idx):
        super().__init__()
        self.embed = nn.Embedding(_VOCAB, 16, padding_idx=padding_idx)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.out = nn.Linear(32, 3)

    def training_step(self, batch, batch_idx):
        tokens, tags = (batch["input_ids"], batch["labels"]) if isinstance(batch, dict) else batch
        logits = self.out(self.rnn(self.embed(tokens))[0])
        return F.cross_entropy(logits.reshape(-1, 3), tags.reshape(-1), ignore_index=-100)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("label_pad,as_dict", [(0, False), (-100, False), (0, True), (-100, True)],
                         ids=["tuple-padded-with-tag-0", "tuple-ignore-index", "dict-padded-with-tag-0",
                              "dict-ignore-index"])
def test_padding_trained_as_a_tag(tmp_path, label_pad, as_dict):
    L.seed_everything(0)
    # The tuple batches rely on the model's Embedding(padding_idx); the dict batches on their attention_mask.
    model = _Tagger(padding_idx=None if as_dict else _PAD)
    train = DataLoader(_tagging(256, 0), batch_size=32, shuffle=True, collate_fn=_collate(label_pad, as_dict))
    report = read_report(fit(model, tmp_path, train, max_epochs=1).log_dir)
    found = [f for f in serious(report, "label-distribution") if f["data"].get("padded_positions")]
    if label_pad == -100:
        assert not serious(report, "label-distribution"), serious(report)
        return
    (finding,) = found
    assert finding["data"]["label"] == 0 and finding["data"]["padding_share"] > 0.2, finding["data"]
    assert "padding_value=-100" in finding["advice"]


def _collate_with_mask(label_pad):
    """`(tokens, key_padding_mask, tags)`: the bool mask, the same shape as the tokens, comes before the labels."""
    def collate(batch):
        tokens, labels = _collate(label_pad, False)(batch)
        return tokens, tokens == _PAD, labels
    return collate


class _MaskedTagger(_Tagger):
    def training_step(self, batch, batch_idx):
        tokens, pad, tags = batch
        logits = self.out(self.rnn(self.embed(tokens))[0]).masked_fill(pad.unsqueeze(-1), 0.0)
        return F.cross_entropy(logits.reshape(-1, 3), tags.reshape(-1), ignore_index=-100)


@pytest.mark.parametrize("label_pad", [0, -100], ids=["padded-with-tag-0", "ignore-index"])
def test_a_padding_mask_before_the_labels_is_not_taken_as_labels(tmp_path, label_pad):
    L.seed_everything(0)
    train = DataLoader(_tagging(256, 0), batch_size=32, shuffle=True, collate_fn=_collate_with_mask(label_pad))
    report = read_report(fit(_MaskedTagger(padding_idx=_PAD), tmp_path, train, max_epochs=1).log_dir)
    if label_pad == -100:
        assert not serious(report, "label-distribution"), serious(report)  # was: "trained as label True"
        return
    (finding,) = [f for f in serious(report, "label-distribution") if f["data"].get("padded_positions")]
    assert finding["data"]["label"] == 0 and finding["where"] == "batch[2]", finding


class _SetCounter(L.LightningModule):
    """One label per padded set of tokens: `(tokens, key_padding_mask, y)`, labels of shape (batch,)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(_VOCAB, 16, padding_idx=_PAD)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 1,
                                             enable_nested_tensor=False)
        self.out = nn.Linear(16, 3)

    def training_step(self, batch, batch_idx):
        tokens, pad, y = batch
        h = self.encoder(self.embed(tokens), src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return F.cross_entropy(self.out((h * keep).sum(1) / keep.sum(1)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_a_set_model_with_a_key_padding_mask_is_silent(tmp_path):
    L.seed_everything(0)

    def collate(batch):
        tokens, _ = _collate(0, False)(batch)
        lengths = (tokens != _PAD).sum(1)
        return tokens, tokens == _PAD, (lengths >= 10).long() + (lengths >= 15).long()

    train = DataLoader(_tagging(256, 0), batch_size=32, shuffle=True, collate_fn=collate)
    report = read_report(fit(_SetCounter(), tmp_path, train, max_epochs=1).log_dir)
    assert not serious(report, "label-distribution"), serious(report)
    check = next(c for c in report["checks"] if c["name"] == "label-distribution")
    assert check["status"] != "skipped", check
