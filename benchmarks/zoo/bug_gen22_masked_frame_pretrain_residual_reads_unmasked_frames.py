"""Bug: masked-frame pretraining on synthetic audio, followed by a linear probe. Clips are 0.5 s at 4 kHz of one of
four sound types (rising chirp, falling chirp, steady tone, two-tone warble) with random pitch and noise, from a
seeded torch.Generator; log-magnitude spectrograms (33 bins x 32 frames) are computed in torch with `torch.stft`
and standardised with training-set statistics. A dilated Conv1d encoder over time sees the spectrogram with 40 % of
its frames replaced by a learned mask vector and is trained to reconstruct the masked frames (MSE on masked frames
only). After pretraining, a logistic-regression probe on the mean-pooled encoder features classifies the sound type.

The reconstruction head is parameterised as a residual, `recon = frames + head(h)`, so that the network only has to
learn a correction, but `frames` is the original, unmasked spectrogram rather than the masked input the encoder
saw. The loss on masked frames is then minimised by `head(h) = 0`: the targets are read straight from the input at
the same positions. The loss starts low and goes to ~0, the encoder gets almost no useful signal, and the features
are no better than chance. Symptom after 10 epochs: masked-frame val MSE 0.0000 (with the residual taken
on the masked input: 0.674), probe accuracy 0.257 (fixed: 0.920)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout22"
SR, N = 4000, 2000


def sound_clips(n, g):
    t = torch.arange(N).float() / SR
    kind = torch.randint(0, 4, (n,), generator=g)
    f0 = 300 + 900 * torch.rand(n, 1, generator=g)
    sweep = 600 * torch.rand(n, 1, generator=g) + 400
    freq = torch.where((kind == 0)[:, None], f0 + sweep * t / t[-1], f0)
    freq = torch.where((kind == 1)[:, None], f0 + sweep * (1 - t / t[-1]), freq)
    freq = torch.where((kind == 3)[:, None], f0 + 0.5 * sweep * (torch.sin(2 * math.pi * 8 * t) > 0), freq)
    phase = 2 * math.pi * torch.cumsum(freq, 1) / SR
    clips = torch.sin(phase) + 0.3 * torch.randn(n, N, generator=g)
    spec = torch.stft(clips, n_fft=64, hop_length=64, window=torch.hann_window(64), return_complex=True).abs()
    return torch.log(spec + 1e-3), kind


class MaskedFrameModel(L.LightningModule):
    def __init__(self, bins=33, hidden=64, mask_prob=0.4, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.mask_vector = nn.Parameter(torch.zeros(bins))
        self.encoder = nn.Sequential(
            nn.Conv1d(bins, hidden, 3, padding=1), nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=2, dilation=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 3, padding=4, dilation=4), nn.GELU())
        self.head = nn.Conv1d(hidden, bins, 1)

    def encode(self, frames, mask=None):
        if mask is not None:
            frames = torch.where(mask[:, None, :], self.mask_vector[None, :, None], frames)
        return self.encoder(frames)

    def forward(self, frames, mask):
        h = self.encode(frames, mask)
        return frames + self.head(h)

    def _loss(self, frames):
        mask = torch.rand(frames.shape[0], frames.shape[2], device=frames.device) < self.hparams.mask_prob
        recon = self(frames, mask)
        return F.mse_loss(recon.transpose(1, 2)[mask], frames.transpose(1, 2)[mask])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


@torch.no_grad()
def probe_accuracy(model, x_tr, y_tr, x_va, y_va):
    model.eval()
    f_tr, f_va = model.encode(x_tr).mean(2), model.encode(x_va).mean(2)
    clf = LogisticRegression(max_iter=2000).fit(f_tr.numpy(), y_tr.numpy())
    return clf.score(f_va.numpy(), y_va.numpy())


def main():
    L.seed_everything(2203)
    g = torch.Generator().manual_seed(31)
    x_tr, y_tr = sound_clips(1200, g)
    x_va, y_va = sound_clips(300, g)
    mean, std = x_tr.mean((0, 2), keepdim=True), x_tr.std((0, 2), keepdim=True)
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    model = MaskedFrameModel()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va), batch_size=300))
    acc = probe_accuracy(model, x_tr[:400], y_tr[:400], x_va, y_va)
    print(f"SYMPTOM val_masked_mse={float(trainer.callback_metrics['val_loss']):.4f} probe_acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
