"""target-leakage for masked modelling whose output reads the hidden values: masked-frame pretraining with a
residual from the unmasked frames fires; the residual from the masked input, a denoising autoencoder (no mask
argument) and a BERT-style token model (integer input) stay silent."""

import torch
import torch.nn.functional as F
from helpers import fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.checks.masked_reads import scored_selection

MASKED = "masked positions the loss scores"


class MaskedFrames(L.LightningModule):
    """Masked-frame pretraining on ``(B, F, T)`` spectrogram-like frames, mask ``(B, T)`` drawn in the step."""

    def __init__(self, residual_from_original: bool, bins: int = 6):
        super().__init__()
        self.original = residual_from_original
        self.mask_vector = nn.Parameter(torch.zeros(bins))
        self.encoder = nn.Sequential(nn.Conv1d(bins, 16, 3, padding=1), nn.GELU())
        self.head = nn.Conv1d(16, bins, 1)

    def forward(self, frames, mask):
        masked = torch.where(mask[:, None, :], self.mask_vector[None, :, None], frames)
        return (frames if self.original else masked) + self.head(self.encoder(masked))

    def training_step(self, batch, batch_idx):
        (frames,) = batch
        mask = torch.rand(frames.shape[0], frames.shape[2], device=frames.device) < 0.4
        recon = self(frames, mask)
        return F.mse_loss(recon.transpose(1, 2)[mask], frames.transpose(1, 2)[mask])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class Denoiser(L.LightningModule):
    """A denoising autoencoder: noisy input, clean target, no mask argument."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return F.mse_loss(self(x + 0.1 * torch.randn_like(x)), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class MaskedTokens(L.LightningModule):
    """BERT-style: 15 % of the tokens replaced by a mask id in the step, the mask passed too, CE on them."""

    def __init__(self, vocab: int = 20):
        super().__init__()
        self.emb, self.out = nn.Embedding(vocab + 1, 16), nn.Linear(16, vocab)
        self.mask_id = vocab

    def forward(self, ids, mask):
        return self.out(self.emb(ids.masked_fill(mask, self.mask_id)))

    def training_step(self, batch, batch_idx):
        (ids,) = batch
        mask = torch.rand(ids.shape, device=ids.device) < 0.15
        return F.cross_entropy(self(ids, mask)[mask], ids[mask])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class Imputer(L.LightningModule):
    """An imputing autoencoder scored on the observed values, the missing-value mask carried by the batch."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, x, missing):
        return self.net(torch.cat([x, missing.float()], 1))

    def training_step(self, batch, batch_idx):
        x, missing = batch
        return F.mse_loss(self(x, missing)[~missing], x[~missing])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _report(tmp_path, model, *x):
    t = fit(model, tmp_path, DataLoader(TensorDataset(*x), batch_size=16), None,
            callbacks=[LeakageChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2)
    report = read_report(t.log_dir)
    return report, next(c for c in report["checks"] if c["name"] == "target-leakage")


def _frames():
    return torch.randn(64, 6, 10, generator=torch.Generator().manual_seed(0))


def test_residual_from_the_unmasked_frames_fires(tmp_path, one_thread):
    report, status = _report(tmp_path, MaskedFrames(residual_from_original=True), _frames())
    (finding,) = serious(report, "target-leakage")
    assert status["status"] == "fail" and finding["severity"] == "error"
    assert finding["data"]["mask_axes"] == [0, 2] and "residual" in finding["advice"]


def test_residual_from_the_masked_input_is_silent(tmp_path, one_thread):
    report, status = _report(tmp_path, MaskedFrames(residual_from_original=False), _frames())
    assert serious(report) == [] and status["status"] == "pass" and MASKED in status["detail"]


def test_denoiser_and_token_model_are_not_judged(tmp_path, one_thread):
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    report, status = _report(tmp_path / "dae", Denoiser(), x)
    assert serious(report, "target-leakage") == [] and MASKED not in status.get("detail", "")
    ids = torch.randint(0, 20, (64, 12), generator=torch.Generator().manual_seed(2))
    report, status = _report(tmp_path / "mlm", MaskedTokens(), ids)
    assert serious(report, "target-leakage") == [] and MASKED not in status.get("detail", "")


def test_scored_selection_reads_the_polarity_and_leaves_padding_alone():
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(3))
    visible = torch.rand(4, 5, generator=torch.Generator().manual_seed(4)) < 0.5
    axes, scored = scored_selection(x, visible, [x.transpose(1, 2)[~visible]])  # a mask of the kept frames
    assert axes == (0, 2) and torch.equal(scored, ~visible)
    padded = x.clone()
    pad = torch.zeros(4, 5, dtype=torch.bool)
    pad[:, 3:] = True
    padded.transpose(1, 2)[pad] = 0.0
    assert scored_selection(padded, pad, [padded.transpose(1, 2)[~pad]]) is None  # loss on the real frames


def test_a_mask_the_batch_carries_is_not_judged(tmp_path, one_thread):
    g = torch.Generator().manual_seed(5)
    x, missing = torch.randn(64, 8, generator=g), torch.rand(64, 8, generator=g) < 0.2
    x = torch.where(missing, x.mean(0, keepdim=True), x)  # mean-filled: the model reads the observed values
    report, status = _report(tmp_path, Imputer(), x, missing)
    assert serious(report, "target-leakage") == [] and MASKED not in status.get("detail", "")
