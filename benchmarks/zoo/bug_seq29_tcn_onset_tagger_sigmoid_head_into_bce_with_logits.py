"""Bug: a causal dilated TCN that tags "onset" steps in a 3-channel synthetic sensor stream: step t is an onset when
the smoothed energy of the channels crosses a threshold from below at t (about 7% of the steps). The model ends in
`nn.Sequential(..., nn.Conv1d(hidden, 1, 1), nn.Sigmoid())` so that `predict` returns probabilities for the
alerting service, and the loss is `BCEWithLogitsLoss(pos_weight=...)` with pos_weight = negatives/positives
computed on the training tags.

What is wrong: `BCEWithLogitsLoss` applies its own sigmoid, so it receives probabilities in (0, 1) where it expects
logits: the effective prediction is sigmoid(p), which is confined to (0.5, 0.73). The loss still decreases
(sigmoid of a probability is monotone in it), but it can never approach 0, its gradient is squashed by the extra
sigmoid, and the tagger ends up much worse: no output probability clears 0.5 on validation.

Measured (12 epochs): val onset F1 0.00 (val loss 1.30) with the bug vs 0.62 (val loss 0.32) when the head returns
logits (threshold at logit 0) and the sigmoid is applied only in `predict_step`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout29"

LENGTH, CHANNELS = 96, 3


def make_streams(n, gen):
    base = torch.randn(n, CHANNELS, LENGTH, generator=gen)
    kernel = torch.ones(CHANNELS, 1, 5) / 5
    x = F.conv1d(F.pad(base, (4, 0)), kernel, groups=CHANNELS)  # causal moving average per channel
    energy = x.pow(2).mean(1)
    above = energy > 0.35
    onset = above & ~torch.cat([torch.zeros(n, 1, dtype=torch.bool), above[:, :-1]], dim=1)
    x = x / x.std()
    return TensorDataset(x, onset.float())


class CausalConv(nn.Module):
    def __init__(self, c_in, c_out, dilation, k=3):
        super().__init__()
        self.left = (k - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, k, dilation=dilation)

    def forward(self, x):
        return self.conv(F.pad(x, (self.left, 0)))


class OnsetTCN(L.LightningModule):
    def __init__(self, pos_weight, hidden=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            CausalConv(CHANNELS, hidden, 1), nn.ReLU(),
            CausalConv(hidden, hidden, 2), nn.ReLU(),
            CausalConv(hidden, hidden, 4), nn.ReLU(),
            nn.Conv1d(hidden, 1, 1), nn.Sigmoid())
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def forward(self, x):
        return self.net(x).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        pred = out > 0.5
        tp = (pred & (y > 0)).sum()
        f1 = 2 * tp / (pred.sum() + (y > 0).sum()).clamp_min(1)
        self.log("val_loss", self.loss_fn(out, y))
        self.log("val_f1", f1.float())

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(29)
    gen = torch.Generator().manual_seed(2929)
    train_ds, val_ds = make_streams(1024, gen), make_streams(256, gen)
    pos = train_ds.tensors[1].mean().item()
    model = OnsetTCN(pos_weight=(1 - pos) / pos)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=128))
    m = trainer.callback_metrics
    print(f"SYMPTOM onset_rate={pos:.3f} val_f1={m['val_f1'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
