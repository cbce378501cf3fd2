"""batch-mixing by padding, on real Trainers with HF-style dict batches padded to their longest sequence: a GRU
classified from `out[:, -1]` of the padded batch fires (each prediction depends on its batchmates' lengths); the
same GRU read at each sequence's last real step, and a Transformer encoder given the padding mask with masked mean
pooling, stay silent, as does `out[:, -1]` of batches padded to one fixed length (the padding never changes). An
unpacked BiLSTM tagger, whose per-position outputs meet the padding through the backward direction, and an unpacked
bidirectional GRU classified from its final states are noted in the detail only."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks._padding_probe import padding_probe, right_padding_mask
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary

VOCAB, PAD = 12, 0


def _events(n=256):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(1, VOCAB, (int(torch.randint(3, 17, (1,), generator=g)),), generator=g)
        out.append({"input_ids": ids, "labels": int((ids == 9).sum() >= 2)})
    return out


def _collate(fixed=None):
    def collate(items):
        width = fixed or max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), PAD)
        mask = torch.zeros(len(items), width, dtype=torch.long)
        for i, it in enumerate(items):
            ids[i, :len(it["input_ids"])], mask[i, :len(it["input_ids"])] = it["input_ids"], 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([it["labels"] for it in items])}
    return collate


class EventClassifier(L.LightningModule):
    def __init__(self, read: str):
        super().__init__()
        self.read = read
        self.emb = nn.Embedding(VOCAB, 16)
        if read == "attention":
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        else:
            self.gru = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(16 if read == "attention" else 32, 2)

    def forward(self, input_ids, attention_mask):
        x = self.emb(input_ids)
        if self.read == "attention":
            h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
            m = attention_mask[..., None].float()
            return self.head((h * m).sum(1) / m.sum(1))
        out, _ = self.gru(x)
        if self.read == "last_padded":  # the bug: the last step of the padded batch
            return self.head(out[:, -1])
        return self.head(out[torch.arange(len(out)), attention_mask.sum(1) - 1])

    def training_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        return F.cross_entropy(logits, batch["labels"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, read, fixed=None):
    L.seed_everything(0)
    loader = DataLoader(_events(), batch_size=32, shuffle=True, collate_fn=_collate(fixed))
    return fit_report(tmp_path, EventClassifier(read), loader, [ModelChecks(), SanitySummary(print_summary=False)],
                      max_steps=3)


def test_last_step_of_the_padded_batch_fires(tmp_path):
    (finding,) = serious(_report(tmp_path, "last_padded"), "batch-mixing")
    assert "padded" in finding["message"] and finding["data"]["moved"] >= 2


@pytest.mark.parametrize("read", ["last_real", "attention"])
def test_models_that_read_the_mask_stay_silent(tmp_path, read):
    report = _report(tmp_path, read)
    assert not serious(report, "batch-mixing"), serious(report)


class Tagger(L.LightningModule):
    """A BiLSTM tagger over the padded batch, unpacked: per-position outputs, noted, not reported."""

    def __init__(self):
        super().__init__()
        self.emb, self.lstm = nn.Embedding(VOCAB, 16), nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 2)

    def forward(self, input_ids, attention_mask):
        return self.head(self.lstm(self.emb(input_ids))[0])

    def training_step(self, batch, batch_idx):
        labels = torch.where(batch["attention_mask"] == 1, batch["input_ids"] % 2, -100)
        return F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]).transpose(1, 2), labels)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_unpacked_bilstm_tagger_is_noted_not_reported(tmp_path):
    L.seed_everything(0)
    loader = DataLoader(_events(), batch_size=32, shuffle=True, collate_fn=_collate())
    report = fit_report(tmp_path, Tagger(), loader, [ModelChecks(), SanitySummary(print_summary=False)], max_steps=3)
    assert not serious(report, "batch-mixing"), serious(report)
    assert "per-position outputs" in {c["name"]: c for c in report["checks"]}["batch-mixing"]["detail"]


class BiEncoder(EventClassifier):
    """A bidirectional GRU classified from its final states, run unpacked: noted, not reported."""

    def __init__(self):
        super().__init__("last_padded")
        self.gru = nn.GRU(16, 16, batch_first=True, bidirectional=True)

    def forward(self, input_ids, attention_mask):
        _, h = self.gru(self.emb(input_ids))
        return self.head(torch.cat([h[0], h[1]], -1))


def test_unpacked_bidirectional_encoder_is_noted_not_reported(tmp_path):
    L.seed_everything(0)
    loader = DataLoader(_events(), batch_size=32, shuffle=True, collate_fn=_collate())
    report = fit_report(tmp_path, BiEncoder(), loader, [ModelChecks(), SanitySummary(print_summary=False)], max_steps=3)
    assert not serious(report, "batch-mixing"), serious(report)
    assert "bidirectional RNN" in {c["name"]: c for c in report["checks"]}["batch-mixing"]["detail"]


def test_batches_padded_to_one_fixed_length_are_not_probed(tmp_path):
    report = _report(tmp_path, "last_padded", fixed=20)
    assert not serious(report, "batch-mixing"), serious(report)


def test_only_right_padding_to_the_longest_is_read():
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert right_padding_mask({"attention_mask": mask}) is not None
    assert right_padding_mask({"attention_mask": mask.flip(1)}) is None  # left padding
    assert right_padding_mask((mask, mask)) is None  # not a dict batch
    assert padding_probe(object(), {"input_ids": mask}) is None  # no mask
