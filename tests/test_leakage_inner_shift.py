"""causal-leakage for a next-token model that shifts inside ``forward`` (BOS prepended, last token dropped) and is
scored against its own input: a decoder whose cross-attention reads the whole row fires; the same model with a
causal encoder, a bidirectional denoiser, a sequence autoencoder and a model that hides the last token (targets equal
to their input too) stay silent."""

import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks._inner_shift import own_token_target
from lightning_sanity.callbacks.leakage import LeakageChecks

V, T, D = 12, 10, 32


class RowModel(L.LightningModule):
    """Tokens in, one score row per position out; the loss target is the batch's tokens themselves."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.tok, self.src = nn.Embedding(V + 1, D), nn.Embedding(V, D)
        self.pos = nn.Parameter(torch.randn(T, D) * 0.1)
        self.dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, 2, 64, dropout=0.0, batch_first=True), 1)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, 2, 64, dropout=0.0, batch_first=True), 1)
        self.gru = nn.GRU(D, D, batch_first=True)
        self.head = nn.Linear(D, V)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(T))

    def forward(self, tokens):
        if self.kind in ("memory-is-input", "causal", "autoencoder"):  # BOS in front, the last token dropped
            h = self.tok(torch.cat([torch.full_like(tokens[:, :1], V), tokens[:, :-1]], 1)) + self.pos
        if self.kind == "memory-is-input":  # the bug: cross-attention to the unmasked row
            h = self.dec(h, memory=h, tgt_mask=self.causal)
        elif self.kind == "causal":
            h = self.enc(h, mask=self.causal)
        elif self.kind == "denoiser":  # no shift: reconstructs every token, reading all of them
            h = self.enc(self.src(tokens) + self.pos)
        elif self.kind == "hides-last":  # never reads the last token, but reconstructs the others: no shifted copy
            h = self.enc(self.tok(torch.cat([tokens[:, :-1], torch.full_like(tokens[:, :1], V)], 1)) + self.pos)
        else:  # "autoencoder": the decoder reads the shifted row, its memory a summary of the whole row
            _, z = self.gru(self.src(tokens))
            h = self.dec(h, memory=z.transpose(0, 1), tgt_mask=self.causal)
        return self.head(h)

    def training_step(self, batch, batch_idx):
        (tokens,) = batch
        return F.cross_entropy(self(tokens).reshape(-1, V), tokens.reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, kind):
    tokens = torch.randint(0, V, (64, T), generator=torch.Generator().manual_seed(0))
    t = fit(RowModel(kind), tmp_path, DataLoader(TensorDataset(tokens), batch_size=16), None,
            callbacks=[LeakageChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2)
    report = read_report(t.log_dir)
    return report, next(c for c in report["checks"] if c["name"] == "causal-leakage")


def test_decoder_whose_memory_is_its_own_input_fires(tmp_path):
    report, status = _report(tmp_path, "memory-is-input")
    (finding,) = serious(report, "causal-leakage")
    assert status["status"] == "fail" and finding["data"]["perturbed_after"] < T - 1


def test_causal_model_with_the_same_inner_shift_passes(tmp_path):
    report, status = _report(tmp_path, "causal")
    assert serious(report) == [] and status["status"] == "pass"


def test_reconstruction_models_scored_on_their_input_are_not_next_token_tasks(tmp_path):
    for kind in ("denoiser", "autoencoder", "hides-last"):
        report, status = _report(tmp_path / kind, kind)
        assert serious(report) == [] and status["status"] == "skipped", kind  # read the last token, or no shift


def test_own_token_target_needs_the_same_values():
    ids = torch.randint(0, 9, (4, 6), generator=torch.Generator().manual_seed(1))
    assert own_token_target(ids, [ids.flatten()]) and own_token_target(ids, [ids.clone()])
    assert not own_token_target(ids, [ids[:, 1:].flatten()]) and not own_token_target(ids.float(), [ids.flatten()])
