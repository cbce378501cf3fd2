"""Bug: premature-ventricular-contraction (PVC) detection on single ECG beats (synthetic, 96 samples per beat: a
normal beat has a P wave and a narrow QRS, a PVC has no P wave and a wide, tall, inverted-T complex; per-beat
amplitude gain, baseline offset of 0.5-2 mV and noise). The training script was adapted from the team's
fine-tuning recipe, which keeps the BatchNorm statistics of a pretrained encoder frozen: `on_train_epoch_start`
calls `freeze_bn_stats(self.encoder)`, putting every BatchNorm1d into eval mode. Here `pretrained_ckpt=None`, so
the encoder is trained from scratch and its BatchNorm layers sit in eval mode during training with their initial
running statistics (mean 0, var 1): they never normalise anything, and the raw baseline offset flows straight
into the convolutions. Training still converges because the affine parameters and convolutions adapt (the task
is easy), it is just slower and worse calibrated. Measured (same seed, 10 epochs): val loss 0.041 / acc 1.000
with the frozen statistics vs 0.007 / 1.000 without the call."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout28"

BEAT = 96


def make_beats(n=1500, seed=23):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(BEAT).float()
    y = (torch.rand(n, generator=g) < 0.3).long()
    shift = torch.randint(-6, 7, (n, 1), generator=g).float()
    c = 48 + shift
    normal = (0.15 * torch.exp(-((t - c + 20) ** 2) / 15) + 1.0 * torch.exp(-((t - c) ** 2) / 3)
              + 0.3 * torch.exp(-((t - c - 25) ** 2) / 40))
    pvc = 1.4 * torch.exp(-((t - c) ** 2) / 25) - 0.5 * torch.exp(-((t - c - 28) ** 2) / 60)
    beat = torch.where(y[:, None] == 1, pvc, normal)
    gain = 0.6 + 0.8 * torch.rand(n, 1, generator=g)
    offset = 0.5 + 1.5 * torch.rand(n, 1, generator=g)
    x = gain * beat + offset + 0.08 * torch.randn(n, BEAT, generator=g)
    return x.unsqueeze(1), y


def freeze_bn_stats(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eval()


class ECGBeatNet(L.LightningModule):
    def __init__(self, pretrained_ckpt=None, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv1d(1, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(32, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        if pretrained_ckpt is not None:
            self.encoder.load_state_dict(torch.load(pretrained_ckpt))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 2))

    def forward(self, x):
        return self.head(self.encoder(x))

    def on_train_epoch_start(self):
        # keep the encoder's BatchNorm statistics fixed while fine-tuning
        freeze_bn_stats(self.encoder)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(29)
    x, y = make_beats()
    train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=32, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(x[1200:], y[1200:]), batch_size=300)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ECGBeatNet(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
