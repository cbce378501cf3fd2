"""Healthy: anomaly detection for a water pump from three sensor channels (synthetic: motor current, outlet
pressure and vibration share the pump's duty cycle; each window has its own load level, phase and noise). An LSTM
sequence autoencoder (encoder LSTM -> 24-d code; the decoder LSTM starts from a state computed from the code and
reads the code plus a time-position clock at every step -> linear) is trained
with L1 reconstruction loss on normal windows only, channels standardised with training statistics, Adam + StepLR,
gradient-norm clipping, dropout on the code. Validation loss is the reconstruction error of normal held-out windows;
after training, windows with injected faults (cavitation bursts in the vibration channel, a pressure sensor stuck at
a constant, a drifting current offset) are scored by reconstruction error. Final val L1 0.43 (standardised units; the
per-window noise floor is high on the vibration channel) and anomaly AUROC 0.95 against held-out normal windows."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

STEPS = 60


def pump_windows(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(STEPS, dtype=torch.float32)
    period = 18 + 6 * torch.rand(n, 1, generator=g)
    phase = 6.28 * torch.rand(n, 1, generator=g)
    load = 0.7 + 0.6 * torch.rand(n, 1, generator=g)
    cycle = torch.sin(2 * math.pi * t / period + phase)
    current = 10 * load + 2.5 * load * cycle + 0.3 * torch.randn(n, STEPS, generator=g)
    pressure = (3 * load + 0.8 * torch.sin(2 * math.pi * t / period + phase - 0.6)
                + 0.1 * torch.randn(n, STEPS, generator=g))
    vibration = (0.5 * load * torch.sin(4 * math.pi * t / period + phase) ** 2
                 + 0.1 * torch.randn(n, STEPS, generator=g))
    return torch.stack([current, pressure, vibration], dim=2)


def inject_faults(x, seed):
    g = torch.Generator().manual_seed(seed)
    x = x.clone()
    kind = torch.randint(0, 3, (len(x),), generator=g)
    for i, k in enumerate(kind.tolist()):
        start = int(torch.randint(0, STEPS - 20, (1,), generator=g))
        if k == 0:    # cavitation: noisy bursts in the vibration channel
            x[i, start:start + 20, 2] += 0.8 * torch.randn(20, generator=g)
        elif k == 1:  # pressure sensor stuck
            x[i, start:, 1] = x[i, start, 1]
        else:         # current offset drifting up
            x[i, start:, 0] += torch.linspace(0, 4, STEPS - start)
    return x


class LSTMAutoencoder(L.LightningModule):
    def __init__(self, hidden=64, code=24, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.LSTM(3, hidden, batch_first=True)
        self.to_code = nn.Sequential(nn.Linear(hidden, code), nn.Tanh(), nn.Dropout(0.1))
        self.init_state = nn.Linear(code, 2 * hidden)
        self.decoder = nn.LSTM(code + 2, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x):
        _, (h, _) = self.encoder(x)
        code = self.to_code(h[-1])
        h0, c0 = torch.tanh(self.init_state(code)).chunk(2, dim=1)
        pos = torch.linspace(0, 1, x.shape[1], device=x.device)
        clock = torch.stack([pos, 1 - pos], dim=1).expand(x.shape[0], -1, -1)
        dec_in = torch.cat([code.unsqueeze(1).expand(-1, x.shape[1], -1), clock], dim=2)
        dec, _ = self.decoder(dec_in, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
        return self.out(dec)

    def score(self, x):
        return (self(x) - x).abs().mean(dim=(1, 2))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.l1_loss(self(x), x)
        self.log("train_l1", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_l1", F.l1_loss(self(x), x))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.3)]


def main():
    L.seed_everything(61)
    train_raw = pump_windows(2000, seed=1)
    val_raw = pump_windows(400, seed=2)
    faulty_raw = inject_faults(pump_windows(400, seed=3), seed=4)
    mu = train_raw.mean(dim=(0, 1))
    sd = train_raw.std(dim=(0, 1))

    def norm(x):
        return (x - mu) / sd

    model = LSTMAutoencoder()
    trainer = L.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        gradient_clip_algorithm="norm",
        logger=TensorBoardLogger("lightning_logs", name="pump_lstm_ae"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(norm(train_raw)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(norm(val_raw)), batch_size=200))

    model.eval()
    with torch.no_grad():
        normal, faulty = model.score(norm(val_raw)), model.score(norm(faulty_raw))
    labels = torch.cat([torch.zeros(len(normal)), torch.ones(len(faulty))])
    auroc = roc_auc_score(labels.numpy(), torch.cat([normal, faulty]).numpy())
    print(f"SYMPTOM epochs_run={trainer.current_epoch} val_l1={float(trainer.callback_metrics['val_l1']):.3f} "
          f"anomaly_auroc={auroc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
