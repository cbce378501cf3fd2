"""Healthy: autoregressive predictive coding (APC) on synthetic log-mel clips (16 mel bins x 64 frames, decaying
notes that change pitch every 16 frames, a random per-clip gain). A dilated temporal conv net with left-only padding
predicts the next frame as a residual on the current one. The per-clip gain is removed inside the model by a
streaming (running) CMVN: the mean and variance at frame t are cumulative sums over frames 0..t divided by t+1, so
the normalised feature at t never sees a later frame, which is what an online speech front end does and what keeps
a next-frame predictor honest. Inputs are also standardised with scalar statistics from the training clips only.
Val MSE 0.046 against 0.061 for "next frame = this frame" on the same clips; outputs at frames < 32 move by 0.0 when
frames 32..63 are perturbed."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout35"
N_MELS, FRAMES = 16, 64


def logmel_clips(g, n):
    pitch = torch.randint(2, N_MELS - 3, (n, FRAMES // 16), generator=g).float().repeat_interleave(16, 1)
    decay = torch.exp(-(torch.arange(FRAMES) % 16).float() / 6.0)
    bins = torch.arange(N_MELS).float()[None, :, None]
    spec = decay * (torch.exp(-(bins - pitch[:, None]) ** 2 / 2) + 0.5 * torch.exp(-(bins - pitch[:, None] - 4) ** 2))
    gain = torch.randn(n, 1, 1, generator=g)
    return torch.log(spec + 0.05) + gain + 0.05 * torch.randn(n, N_MELS, FRAMES, generator=g)


class CausalBlock(nn.Module):
    def __init__(self, ch, dilation):
        super().__init__()
        self.pad = 2 * dilation
        self.conv = nn.Conv1d(ch, ch, 3, dilation=dilation)

    def forward(self, h):
        return h + F.gelu(self.conv(F.pad(h, (self.pad, 0))))


class RunningCMVN(nn.Module):
    def __init__(self, eps=1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        count = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
        mean = x.cumsum(-1) / count
        var = (x * x).cumsum(-1) / count - mean * mean
        return (x - mean) / (var.clamp_min(0) + self.eps + 1.0 / count).sqrt()


class APC(L.LightningModule):
    def __init__(self, ch=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.norm = RunningCMVN()
        self.inp = nn.Conv1d(N_MELS, ch, 1)
        self.blocks = nn.Sequential(*[CausalBlock(ch, d) for d in (1, 2, 4, 8)])
        self.out = nn.Conv1d(ch, N_MELS, 1)

    def forward(self, x):
        return x + self.out(self.blocks(self.inp(self.norm(x))))

    def _loss(self, x):
        return F.mse_loss(self(x)[..., :-1], x[..., 1:])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=25)}


def main():
    L.seed_everything(3502)
    g = torch.Generator().manual_seed(3502)
    train, val = logmel_clips(g, 320), logmel_clips(g, 96)
    mean, std = train.mean(), train.std()
    train, val = (train - mean) / std, (val - mean) / std
    model = APC()
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=96))
    model.eval()
    with torch.no_grad():
        probe = val[:16].clone()
        moved = probe.clone()
        moved[..., 32:] += torch.randn(moved[..., 32:].shape, generator=g)
        shift = (model(moved)[..., :32] - model(probe)[..., :32]).abs().max().item()
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.4f} past_output_shift={shift:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
