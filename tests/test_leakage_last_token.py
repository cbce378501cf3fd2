"""target-leakage for a label cut from the end of a sequence the model still reads whole: a session model packed with
the full lengths while its label is the last click fires; the same model packed with ``lengths - 1``, and a memory
task whose label is the first token, stay silent."""

import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.checks.last_token import last_token_positions

ITEMS, T = 60, 8


def sessions(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (n,), generator=g)
    items = torch.randint(1, ITEMS, (n, T), generator=g)
    return torch.where(torch.arange(T) < lengths[:, None], items, 0), lengths


class NextClick(L.LightningModule):
    def __init__(self, label_at, feed):
        super().__init__()
        self.label_at, self.feed = label_at, feed
        self.emb = nn.Embedding(ITEMS, 16, padding_idx=0)
        self.gru = nn.GRU(16, 16, batch_first=True)
        self.out = nn.Linear(16, ITEMS)

    def forward(self, s, lengths):
        _, h = self.gru(pack_padded_sequence(self.emb(s), lengths.cpu(), batch_first=True, enforce_sorted=False))
        return self.out(h[-1])

    def training_step(self, batch, batch_idx):
        s, lengths = batch
        at = lengths - 1 if self.label_at == "last" else torch.zeros_like(lengths)
        target = s[torch.arange(len(s)), at]
        return F.cross_entropy(self(s, lengths - self.feed), target)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, label_at, feed):
    s, lengths = sessions()
    t = fit(NextClick(label_at, feed), tmp_path, DataLoader(TensorDataset(s, lengths), batch_size=64), None,
            callbacks=[LeakageChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2)
    report = read_report(t.log_dir)
    return report, next(c for c in report["checks"] if c["name"] == "target-leakage")


def test_last_click_left_in_the_input_fires(tmp_path):
    report, status = _report(tmp_path, "last", feed=0)
    (finding,) = serious(report, "target-leakage")
    assert status["status"] == "fail" and finding["data"]["labels"] >= 8 and "last real token" in finding["message"]


def test_last_click_cut_by_lengths_minus_one_is_silent(tmp_path):
    report, status = _report(tmp_path, "last", feed=1)
    assert serious(report) == [] and "does not read the label at its input's last real token" in status["detail"]


def test_first_token_recall_is_a_task_not_a_leak(tmp_path):
    report, status = _report(tmp_path, "first", feed=0)
    assert serious(report) == [] and "last real token" not in status["detail"]


def test_last_token_positions_needs_every_sample_many_labels_and_varying_lengths():
    s, lengths = sessions()
    last = lengths - 1
    label = s[torch.arange(len(s)), last]
    assert torch.equal(last_token_positions(s, label), last)
    wrong = label.clone()
    wrong[0] = (wrong[0] % (ITEMS - 1)) + 1
    assert last_token_positions(s, wrong) is None  # one sample off: no longer the input's last token
    few = s.clone()
    few[torch.arange(len(s)), last] = label % 3 + 1
    assert last_token_positions(few, label % 3 + 1) is None  # three labels: a class token at the end, not an item
    full = torch.randint(1, ITEMS, (64, T), generator=torch.Generator().manual_seed(2))
    assert last_token_positions(full, full[:, -1]) is None  # one length: the end is a fixed place from the start
