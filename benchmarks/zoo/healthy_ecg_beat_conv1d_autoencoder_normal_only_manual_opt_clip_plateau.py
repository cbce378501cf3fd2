"""Healthy: anomaly detection on single ECG beats (128 samples: P wave, QRS complex, T wave; random rate,
amplitude, baseline wander and noise) with a 1-D convolutional autoencoder (12-d dense bottleneck) trained on
normal beats only. Validation monitors the reconstruction MSE of held-out *normal* beats; after training, the reconstruction error
ranks a mixed test set (normal beats vs. inverted-T, missing-P and wide-QRS beats). Manual optimization:
`zero_grad` / `manual_backward` / `clip_gradients` (norm 1.0) / `step`, and a ReduceLROnPlateau that the module
steps itself on the val loss. Final val MSE 0.0006 (noise floor 0.0004), test AUROC 0.99 (missing P 0.97)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
BEAT = 128


def synth_beats(n, seed, anomaly=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, BEAT)[None]
    r = lambda lo, hi: lo + (hi - lo) * torch.rand(n, 1, generator=g)  # noqa: E731
    stretch = r(0.9, 1.1)
    wave = lambda centre, width, amp: amp * torch.exp(-((t - 0.5 - (centre - 0.5) * stretch) ** 2) / (2 * width ** 2))  # noqa: E731
    p_amp, t_amp, qrs_w = r(0.12, 0.2), r(0.25, 0.4), r(0.008, 0.012)
    if anomaly == "missing_p":
        p_amp = p_amp * 0
    if anomaly == "inverted_t":
        t_amp = -t_amp
    if anomaly == "wide_qrs":
        qrs_w = qrs_w * 2.5
    beat = (wave(0.25, 0.03, p_amp) + wave(0.43, qrs_w, -0.15) + wave(0.46, qrs_w, r(0.9, 1.2))
            + wave(0.49, qrs_w, -0.25) + wave(0.72, 0.05, t_amp))
    wander = r(-0.05, 0.05) * torch.sin(2 * torch.pi * (t * r(0.5, 1.5) + r(0, 1)))
    beat = beat * r(0.8, 1.2) + wander + 0.02 * torch.randn(n, BEAT, generator=g)
    return beat[:, None]


class BeatAutoencoder(L.LightningModule):
    def __init__(self, lr=2e-3, clip=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        act = nn.ELU
        self.encoder = nn.Sequential(
            nn.Conv1d(1, 16, 7, 2, 3), act(), nn.Conv1d(16, 32, 5, 2, 2), act(),
            nn.Conv1d(32, 32, 5, 2, 2), act(), nn.Flatten(), nn.Linear(32 * 16, 12),  # 12-d code
        )
        self.decoder = nn.Sequential(
            nn.Linear(12, 32 * 16), nn.Unflatten(1, (32, 16)), act(), nn.ConvTranspose1d(32, 32, 4, 2, 1), act(), nn.ConvTranspose1d(32, 32, 4, 2, 1), act(),
            nn.ConvTranspose1d(32, 16, 4, 2, 1), act(), nn.Conv1d(16, 1, 7, 1, 3),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        opt = self.optimizers()
        loss = F.mse_loss(self(x), x)
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=self.hparams.clip, gradient_clip_algorithm="norm")
        opt.step()
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_loss", F.mse_loss(self(x), x))

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        self.lr_schedulers().step(self.trainer.callback_metrics["val_loss"])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}

    @torch.no_grad()
    def anomaly_score(self, x):
        return ((self(x) - x) ** 2).mean(dim=(1, 2))


def main():
    L.seed_everything(23)
    train = TensorDataset(synth_beats(2000, seed=1))
    val = TensorDataset(synth_beats(400, seed=2))
    model = BeatAutoencoder()
    trainer = L.Trainer(
        max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="ecg_beat_autoencoder"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=200))

    normal = synth_beats(300, seed=3)
    abnormal = torch.cat([synth_beats(100, seed=4, anomaly=a) for a in ("missing_p", "inverted_t", "wide_qrs")])
    model.eval()
    scores = torch.cat([model.anomaly_score(normal), model.anomaly_score(abnormal)])
    labels = torch.cat([torch.zeros(300), torch.ones(300)])
    for k, a in enumerate(("missing_p", "inverted_t", "wide_qrs")):
        part = torch.cat([scores[:300], scores[300 + 100 * k:400 + 100 * k]])
        print(f"SYMPTOM AUROC {a}={roc_auc_score(torch.cat([torch.zeros(300), torch.ones(100)]), part):.3f}")
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss']:.4f} test AUROC={roc_auc_score(labels, scores):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
