"""Bug: a GRU next-step forecaster trained sequence-to-sequence (teacher forced: at every position t of a 16-step
window it predicts x[t+1]) on synthetic sensor windows whose level and scale vary a lot from window to window
(damped oscillators with random offset, amplitude, frequency and noise). To cope with the varying level and scale
the model does reversible instance normalisation inside `forward`: normalise the input window, run the GRU,
de-normalise the predictions.

What is wrong: the mean and standard deviation are taken over the *whole* input window (`x.mean(dim=1)`), which is
the right thing for a many-to-one forecaster but not for a teacher-forced next-step model. The normalised value at
position t, and the de-normalisation of the prediction made at t, both depend on x[t+1], ..., x[T-1], so the
prediction of x[t+1] at position t can read the very value it must predict (e.g. at t = T-2 the next input follows
exactly from the window mean and the values seen so far). Loss goes down normally and looks *better* than it
should; at inference time, when the future part of the window does not exist, the model is much worse.

Measured (14 epochs): val MSE 0.019 with the bug vs 0.027 for the fixed version, which normalises causally with
expanding-window statistics (cumulative mean/variance up to t, std floored at 0.1)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout29"

WINDOW = 16


def make_windows(n, gen):
    t = torch.arange(WINDOW + 1, dtype=torch.float32)
    level = torch.randn(n, 1, generator=gen)
    amp = 0.3 + 1.2 * torch.rand(n, 1, generator=gen)
    freq = 0.2 + 0.6 * torch.rand(n, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
    decay = 0.02 * torch.rand(n, 1, generator=gen)
    x = level + amp * torch.exp(-decay * t) * torch.sin(freq * t + phase)
    x = x + 0.05 * amp * torch.randn(n, WINDOW + 1, generator=gen)
    return TensorDataset(x[:, :-1].unsqueeze(-1), x[:, 1:].unsqueeze(-1))


class RevINNextStepGRU(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3, eps=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(1, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        mu = x.mean(dim=1, keepdim=True)
        sd = x.std(dim=1, keepdim=True) + self.hparams.eps
        out, _ = self.gru((x - mu) / sd)
        return self.head(out) * sd + mu

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        return [opt], [sched]


def main():
    L.seed_everything(29)
    gen = torch.Generator().manual_seed(1729)
    train_dl = DataLoader(make_windows(2048, gen), batch_size=64, shuffle=True)
    val_dl = DataLoader(make_windows(512, gen), batch_size=256)
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RevINNextStepGRU(), train_dl, val_dl)
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
