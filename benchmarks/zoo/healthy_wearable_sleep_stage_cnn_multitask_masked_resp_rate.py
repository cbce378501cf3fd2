"""Healthy: multi-task 1-D CNN on 30-second wearable epochs (chest accelerometer magnitude + PPG, 16 Hz): one head
classifies the sleep stage (wake / light / deep / REM), the other regresses the respiration rate. Respiration
labels come from a chest belt that was worn on only some nights, so 45 % of the windows have NaN there; the
regression loss is a Huber loss over the labelled windows only (mask, and a zero when a batch has none), the
classification loss covers every window. Shared encoder with BatchNorm and dropout, task weights 1 : 0.5,
AdamW with CosineAnnealingLR per epoch. Final val stage acc 0.995, respiration MAE 0.29 breaths/min (predicting
the mean gives 2.7)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
RATE, SECONDS = 16, 30
STAGES = ["wake", "light", "deep", "rem"]


def make_epochs(n, g):
    t = torch.arange(RATE * SECONDS) / RATE
    stage = torch.randint(4, (n,), generator=g)
    movement = torch.tensor([1.0, 0.3, 0.05, 0.15])[stage]
    hr = torch.tensor([72.0, 62.0, 55.0, 68.0])[stage] + 4 * torch.randn(n, generator=g)
    hrv = torch.tensor([0.05, 0.03, 0.01, 0.08])[stage]
    resp = torch.tensor([16.0, 14.0, 12.0, 17.0])[stage] + 2.5 * torch.randn(n, generator=g)
    breathing = torch.sin(2 * torch.pi * resp[:, None] / 60 * t)
    jitter = hrv[:, None] * torch.randn(n, t.numel(), generator=g).cumsum(1) / 8
    ppg = torch.sin(2 * torch.pi * hr[:, None] / 60 * t + jitter) + 0.3 * breathing
    bursts = (torch.rand(n, t.numel(), generator=g) < 0.02 * movement[:, None]).float()
    accel = 0.2 * breathing + movement[:, None] * 0.3 * torch.randn(n, t.numel(), generator=g) + 2 * bursts
    x = torch.stack([accel, ppg], 1) + 0.1 * torch.randn(n, 2, t.numel(), generator=g)
    belt_worn = torch.rand(n, generator=g) > 0.45
    resp_label = torch.where(belt_worn, resp, torch.full_like(resp, float("nan")))
    return x, stage, resp_label


class SleepMultiTask(L.LightningModule):
    def __init__(self, resp_mean, resp_std, lr=3e-3, max_epochs=8):
        super().__init__()
        self.save_hyperparameters()
        layers, c = [], 2
        for out, k in ((32, 9), (64, 7), (64, 5), (96, 5)):
            layers += [nn.Conv1d(c, out, k, padding=k // 2), nn.BatchNorm1d(out), nn.ReLU(), nn.MaxPool1d(2)]
            c = out
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.3))
        self.stage_head = nn.Linear(c, 4)
        self.resp_head = nn.Linear(c, 1)

    def forward(self, x):
        z = self.encoder(x)
        return self.stage_head(z), self.resp_head(z).squeeze(-1)

    def _losses(self, batch):
        x, stage, resp = batch
        logits, resp_hat = self(x)
        ce = F.cross_entropy(logits, stage)
        has = ~torch.isnan(resp)
        target = (resp - self.hparams.resp_mean) / self.hparams.resp_std
        huber = F.huber_loss(resp_hat[has], target[has]) if has.any() else resp_hat.sum() * 0.0
        return logits, resp_hat, has, ce, huber

    def training_step(self, batch, batch_idx):
        _, _, _, ce, huber = self._losses(batch)
        loss = ce + 0.5 * huber
        self.log_dict({"train_ce": ce, "train_huber": huber, "train_loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        logits, resp_hat, has, ce, huber = self._losses(batch)
        rate = resp_hat * self.hparams.resp_std + self.hparams.resp_mean
        self.log_dict({"val_loss": ce + 0.5 * huber,
                       "val_stage_acc": (logits.argmax(1) == batch[1]).float().mean(),
                       "val_resp_mae": (rate[has] - batch[2][has]).abs().mean()}, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.max_epochs)]


if __name__ == "__main__":
    L.seed_everything(480)
    g = torch.Generator().manual_seed(480)
    x_tr, s_tr, r_tr = make_epochs(1500, g)
    x_va, s_va, r_va = make_epochs(400, g)
    mean, std = x_tr.mean(dim=(0, 2), keepdim=True), x_tr.std(dim=(0, 2), keepdim=True)
    labelled = r_tr[~torch.isnan(r_tr)]
    model = SleepMultiTask(float(labelled.mean()), float(labelled.std()))
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="sleep_multitask"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset((x_tr - mean) / std, s_tr, r_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset((x_va - mean) / std, s_va, r_va), batch_size=400))
    has = ~torch.isnan(r_va)
    print(f"SYMPTOM val_stage_acc={float(trainer.callback_metrics['val_stage_acc']):.3f} "
          f"val_resp_mae={float(trainer.callback_metrics['val_resp_mae']):.2f} "
          f"mean_baseline_mae={float((r_va[has] - labelled.mean()).abs().mean()):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")
