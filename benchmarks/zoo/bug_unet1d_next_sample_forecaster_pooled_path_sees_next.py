"""Next-sample forecaster for vibration/audio-like sensor traces: a small 1-D U-Net (left-padded causal
convolutions, one average-pool level, nearest upsampling, skip concatenation) trained to predict x[t+1] at every
position t of a 64-sample window (teacher forcing), then used to forecast 24 samples ahead autoregressively.

Bug: the user made every convolution causal (`F.pad(h, (k - 1, 0))`) and took the network to be causal, but the
pooled path is not: `avg_pool1d(h, 2)` mixes samples 2j and 2j+1, and `interpolate(scale_factor=2)` hands that
mixture back to position 2j - whose training target is x[2j+1]. The U-Net copies the answer through the coarse path
at every even position, so teacher-forced loss looks far better than the signal allows, and the forecaster that
is actually used (autoregressive rollout, where the next sample is not there to peek at) is worse.
Measured symptom: teacher-forced val MSE 0.092 vs 0.166 with the fix (shifting the coarse path one step right
before upsampling), while the 24-step rollout MSE is 0.79 vs 0.66 with the fix.
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout11"
T = 64
HORIZON = 24


def traces(n, length, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length).float()
    f = 0.02 + 0.08 * torch.rand(n, 2, generator=g)
    a = 0.5 + torch.rand(n, 2, generator=g)
    ph = 6.283 * torch.rand(n, 2, generator=g)
    clean = (a[:, :, None] * torch.sin(6.283 * f[:, :, None] * t + ph[:, :, None])).sum(1)
    return clean + 0.3 * torch.randn(n, length, generator=g)


class CausalConv(nn.Module):
    def __init__(self, cin, cout, k=5):
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(cin, cout, k)

    def forward(self, h):
        return self.conv(F.pad(h, (self.k - 1, 0)))


class UNet1d(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.enc = nn.Sequential(CausalConv(1, ch), nn.GELU(), CausalConv(ch, ch), nn.GELU())
        self.mid = nn.Sequential(CausalConv(ch, 2 * ch, 3), nn.GELU(), CausalConv(2 * ch, 2 * ch, 3), nn.GELU())
        self.dec = nn.Sequential(CausalConv(3 * ch, ch), nn.GELU(), nn.Conv1d(ch, 1, 1))

    def forward(self, x):                       # x: (B, 1, T) -> (B, 1, T) predictions of x[t + 1]
        skip = self.enc(x)
        coarse = self.mid(F.avg_pool1d(skip, 2))
        up = F.interpolate(coarse, scale_factor=2, mode="nearest")
        return self.dec(torch.cat([skip, up], dim=1))


class Forecaster(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = UNet1d()

    def forward(self, x):
        return self.net(x)

    def _loss(self, batch):
        (w,) = batch
        inp, tgt = w[:, None, :-1], w[:, None, 1:]
        return F.mse_loss(self(inp), tgt)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]

    @torch.no_grad()
    def rollout(self, context, steps):
        seq = context.clone()
        for _ in range(steps):
            nxt = self(seq[:, None, -T:])[:, 0, -1:]
            seq = torch.cat([seq, nxt], dim=1)
        return seq[:, -steps:]


def main():
    L.seed_everything(77)
    train = traces(3000, T + 1, seed=1)
    val = traces(400, T + 1, seed=2)
    scale = train.std()
    train, val = train / scale, val / scale
    model = Forecaster()
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="unet1d_fc"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=200))
    model.eval()
    test = traces(200, T + HORIZON, seed=3) / scale
    with torch.no_grad():
        tf = F.mse_loss(model(val[:, None, :-1]), val[:, None, 1:]).item()
    pred = model.rollout(test[:, :T], HORIZON)
    ro = F.mse_loss(pred, test[:, T:]).item()
    print(f"SYMPTOM teacher_forced_val_mse={tf:.3f} rollout_mse_{HORIZON}={ro:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
