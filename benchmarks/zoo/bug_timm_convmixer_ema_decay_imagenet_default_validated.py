"""Bug (validation on a model that never trained): a timm-style ConvMixer on 8x8 digits, with a timm `ModelEmaV2`
copy of the weights (state-dict EMA, BatchNorm buffers included) updated after every optimizer step and used for
validation, as timm's train script validates the EMA model. The decay is timm's ImageNet default 0.9999, copied
into a run of 230 optimizer steps: 0.9999^230 = 0.98, so the EMA copy keeps 98 % of the random initialisation and
the validation metrics describe an untrained network while the training loss falls. Symptom: EMA val acc 0.10 and
val loss 2.31 (chance: ln 10 = 2.30), raw-model val acc 0.99; with decay 0.97 (fitting the run length) the EMA
model reaches val acc 0.99 (val loss 0.15)."""

from copy import deepcopy

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout7"


class ModelEmaV2(nn.Module):
    def __init__(self, model, decay=0.9999):
        super().__init__()
        self.module = deepcopy(model)
        self.module.eval()
        self.decay = decay

    def _update(self, model, update_fn):
        with torch.no_grad():
            for ema_v, model_v in zip(self.module.state_dict().values(), model.state_dict().values()):
                ema_v.copy_(update_fn(ema_v, model_v))

    def update(self, model):
        self._update(model, update_fn=lambda e, m: self.decay * e + (1.0 - self.decay) * m)

    def forward(self, x):
        return self.module(x)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def ConvMixer(dim=64, depth=4, kernel_size=3, patch_size=2, num_classes=10):
    return nn.Sequential(
        nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(dim),
        *[nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"), nn.GELU(),
                                   nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, kernel_size=1), nn.GELU(), nn.BatchNorm2d(dim)) for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(dim, num_classes))


class LitConvMixer(L.LightningModule):
    def __init__(self, lr=3e-3, ema_decay=0.9999):
        super().__init__()
        self.save_hyperparameters()
        self.model = ConvMixer()
        self.model_ema = ModelEmaV2(self.model, decay=ema_decay)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.model_ema.update(self.model)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model_ema(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        self.log("val_acc_raw", (self.model(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(19)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.305) / 0.39
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(range(len(y)), test_size=0.2, random_state=6, stratify=d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitConvMixer(), DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    m = trainer.callback_metrics
    print(f"val_acc_ema={m['val_acc'].item():.3f} val_loss_ema={m['val_loss'].item():.3f} "
          f"val_acc_raw={m['val_acc_raw'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
