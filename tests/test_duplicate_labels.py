"""label-distribution's identical inputs with different labels, in real Trainer runs: token inputs judged on the
tokens the attention mask keeps, labels against chance; inputs over many orders of magnitude fingerprinted exactly."""

import lightning as L
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

#: E-mail headers from the web form: a long one, and two short ones.
HEADERS = [list(range(3, 21)), list(range(3, 10)), list(range(12, 20))]
WORDS = {c: list(range(30 + 10 * c, 40 + 10 * c)) for c in range(4)}  # each queue's own words


def _tickets(n: int, max_length: int, seed: int = 0) -> list[dict]:
    """[CLS] + one of the headers + a body of the ticket's queue words, right-truncated to ``max_length``."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        label = int(torch.randint(0, 4, (1,), generator=g))
        body = [WORDS[label][int(i)] for i in torch.randint(0, 10, (int(torch.randint(4, 12, (1,), generator=g)),),
                                                            generator=g)]
        header = HEADERS[int(torch.randint(0, 3, (1,), generator=g))]
        rows.append((([2] + header + body)[:max_length], label))
    return _dict_rows(rows)


def _short_texts(n: int, seed: int = 0) -> list[dict]:
    """Healthy short texts: 1-2 words of the label's queue (texts repeat exactly), one label in six noisy."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        queue = int(torch.randint(0, 4, (1,), generator=g))
        words = [WORDS[queue][int(i)] for i in torch.randint(0, 3, (int(torch.randint(1, 3, (1,), generator=g)),),
                                                             generator=g)]
        noisy = float(torch.rand(1, generator=g)) < 1 / 6
        rows.append(([2] + words, int(torch.randint(0, 4, (1,), generator=g)) if noisy else queue))
    return _dict_rows(rows)


def _dict_rows(rows: list) -> list[dict]:
    return [{"ids": torch.tensor(ids), "labels": torch.tensor(label)} for ids, label in rows]


def _collate(items: list[dict]) -> dict:
    """Dynamic right padding with token 0, HuggingFace-style keys."""
    width = max(len(item["ids"]) for item in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    for i, item in enumerate(items):
        ids[i, :len(item["ids"])] = item["ids"]
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.stack([i["labels"] for i in items])}


class BagClassifier(L.LightningModule):
    """Masked mean of token embeddings, a linear head: a text classifier on dict batches."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32, padding_idx=0)
        self.head = nn.Linear(32, 4)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (self.embed(batch["input_ids"]) * mask).sum(1) / mask.sum(1)
        return F.cross_entropy(self.head(pooled), batch["labels"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _run(tmp_path, rows: list[dict]) -> dict:
    L.seed_everything(0)
    data = DataLoader(rows, batch_size=32, shuffle=True, collate_fn=_collate)
    return fit_report(tmp_path, BagClassifier(), data, my_callbacks(), max_epochs=1, limit_train_batches=4,
                      num_sanity_val_steps=0)


def _duplicates(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["check"] == "label-distribution" and "different labels" in f["message"]]


def test_truncation_that_keeps_only_a_shared_header_fires(tmp_path):
    report = _run(tmp_path, _tickets(512, max_length=19))  # [CLS] + the long header and nothing else
    (finding,) = [f for f in serious(report, "label-distribution") if "different labels" in f["message"]]
    assert finding["severity"] == "warning" and finding["data"]["tokens"] is True
    assert finding["data"]["labels_at_chance"] is True and finding["data"]["largest_group"] >= 2


def test_whole_tickets_and_short_texts_that_repeat_stay_silent(tmp_path):
    report = _run(tmp_path, _tickets(512, max_length=64))
    assert serious(report, "label-distribution") == [] and _duplicates(report) == []
    report = _run(tmp_path, _short_texts(512))
    assert serious(report, "label-distribution") == []
    # Short texts repeat, and label noise makes some repeats disagree, but their labels follow the text: info only.
    (finding,) = _duplicates(report)
    assert finding["severity"] == "info" and finding["data"]["share"] >= 0.05
    assert finding["data"]["labels_at_chance"] is False


class TextAndFeatures(BagClassifier):
    """Reads the tokens and a feature vector beside them (``features``): the text is not the whole input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(4, 32)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (self.embed(batch["input_ids"]) * mask).sum(1) / mask.sum(1)
        return F.cross_entropy(self.head(pooled + self.features(batch["features"])), batch["labels"])


def test_a_shared_text_beside_features_that_carry_the_label_stays_silent(tmp_path):
    rows = _tickets(512, max_length=19)
    for row in rows:
        row["features"] = F.one_hot(row["labels"], 4).float()

    def collate(items):
        out = _collate(items)
        out["features"] = torch.stack([i["features"] for i in items])
        return out

    L.seed_everything(0)
    data = DataLoader(rows, batch_size=32, shuffle=True, collate_fn=collate)
    report = fit_report(tmp_path, TextAndFeatures(), data, my_callbacks(), max_epochs=1, limit_train_batches=4,
                        num_sanity_val_steps=0)
    assert serious(report, "label-distribution") == []
    assert [f["data"]["tokens"] for f in _duplicates(report)] == [False]
