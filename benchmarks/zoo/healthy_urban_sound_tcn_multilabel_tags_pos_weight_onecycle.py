"""Healthy: multi-label urban sound tagging on log-mel-like clips (32 bands x 80 frames). Each clip holds any subset
of six sound events (siren sweep, dog bark bursts, engine idle, horn, jackhammer pulses, speech-like formants); rare
events are rare (5-35 % of clips). A temporal convolutional network (residual blocks of dilated Conv1d 1/2/4/8 with
weight norm, dropout) pools max over time and emits one logit per tag; BCEWithLogitsLoss with a per-tag pos_weight
= negatives/positives from the training labels, OneCycleLR per step, gradient clipping. Final val micro-F1 0.999,
macro-F1 0.999."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
BANDS, FRAMES = 32, 80
TAGS = ["siren", "dog_bark", "engine_idle", "car_horn", "jackhammer", "speech"]
PRIOR = torch.tensor([0.15, 0.3, 0.35, 0.05, 0.1, 0.25])


def make_clips(n, g):
    b = torch.arange(BANDS, dtype=torch.float32)[:, None]
    t = torch.arange(FRAMES, dtype=torch.float32)[None, :]
    y = (torch.rand(n, len(TAGS), generator=g) < PRIOR).float()
    x = 0.5 * torch.randn(n, BANDS, FRAMES, generator=g) + torch.linspace(1, 0, BANDS)[None, :, None]
    for i in range(n):
        shift = float(torch.randint(-3, 4, (1,), generator=g))
        if y[i, 0]:
            x[i] += 1.5 * torch.exp(-((b - 16 - 8 * torch.sin(t / 6) - shift) ** 2) / 4)
        if y[i, 1]:
            on = (torch.rand(1, FRAMES, generator=g) < 0.08).float()
            x[i] += 2.0 * torch.exp(-((b - 10 - shift) ** 2) / 20) * on
        if y[i, 2]:
            x[i] += 0.8 * (torch.exp(-((b - 3) ** 2) / 3)) * (1 + 0.3 * torch.sin(t))
        if y[i, 3]:
            t0 = int(torch.randint(FRAMES - 10, (1,), generator=g))
            x[i, 20:23, t0:t0 + 10] += 2.5
        if y[i, 4]:
            x[i] += 1.2 * ((t.long() % 4) < 2).float() * torch.sigmoid(b - 20)
        if y[i, 5]:
            x[i] += 1.0 * (torch.exp(-((b - 8) ** 2) / 2) + torch.exp(-((b - 14) ** 2) / 2)) * (torch.sin(t / 3) > 0)
    return x, y


class TemporalBlock(nn.Module):
    def __init__(self, c_in, c_out, dilation, dropout=0.2):
        super().__init__()
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, 3, padding=dilation, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, 3, padding=dilation, dilation=dilation))
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.drop(F.relu(self.conv1(x)))
        h = self.drop(F.relu(self.conv2(h)))
        return F.relu(h + self.skip(x))


class SoundTagger(L.LightningModule):
    def __init__(self, pos_weight, lr=5e-3, total_steps=1):
        super().__init__()
        self.save_hyperparameters()
        self.tcn = nn.Sequential(*[TemporalBlock(BANDS if i == 0 else 48, 48, d) for i, d in enumerate([1, 2, 4, 8])])
        self.head = nn.Linear(48, len(TAGS))
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, x):
        return self.head(self.tcn(x).amax(-1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y, pos_weight=self.pos_weight)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = (logits > 0).float()
        tp, fp, fn = (pred * y).sum(0), (pred * (1 - y)).sum(0), ((1 - pred) * y).sum(0)
        micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
        macro = (2 * tp / (2 * tp + fp + fn).clamp(min=1)).mean()
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y), prog_bar=True)
        self.log_dict({"val_micro_f1": micro, "val_macro_f1": macro}, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(6)
    g = torch.Generator().manual_seed(6)
    x_tr, y_tr = make_clips(1600, g)
    x_va, y_va = make_clips(400, g)
    mean, std = x_tr.mean(dim=(0, 2), keepdim=True), x_tr.std(dim=(0, 2), keepdim=True)
    pos = y_tr.sum(0)
    epochs, batch = 8, 32
    train_dl = DataLoader(TensorDataset((x_tr - mean) / std, y_tr), batch_size=batch, shuffle=True)
    model = SoundTagger((len(y_tr) - pos) / pos, total_steps=epochs * len(train_dl))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="urban_sound_tcn"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, train_dl, DataLoader(TensorDataset((x_va - mean) / std, y_va), batch_size=200))
    print(f"SYMPTOM val_micro_f1={float(trainer.callback_metrics['val_micro_f1']):.3f} "
          f"val_macro_f1={float(trainer.callback_metrics['val_macro_f1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
