"""Healthy: transfer learning in one script on sklearn digits. Stage 1 pretrains a small ResNet-style encoder
(conv stem + two residual stages with BatchNorm) as a masked denoising autoencoder on the training images (random
pixels dropped, the decoder reconstructs the clean image). Stage 2 fine-tunes for classification: the stem is
frozen and its BatchNorm is kept in eval mode on purpose (`train()` is overridden so the frozen statistics are not
re-estimated), the residual stages train with a 10x smaller learning rate than the new head (AdamW parameter
groups), CosineAnnealingWarmRestarts per step (cycles of 3 + 6 epochs, ending at the bottom of the second),
gradient clipping, light label smoothing. Final val acc 0.99."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"


class Residual(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.short = (nn.Identity() if stride == 1 and c_in == c_out
                      else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class Encoder(nn.Module):
    def __init__(self, width=24):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = Residual(width, width, 1)
        self.stage2 = Residual(width, 2 * width, 2)   # 8x8 -> 4x4
        self.out_channels = 2 * width

    def forward(self, x):
        return self.stage2(self.stage1(self.stem(x)))


class MaskedDenoiser(L.LightningModule):
    def __init__(self, drop=0.3):
        super().__init__()
        self.encoder = Encoder()
        c = self.encoder.out_channels
        self.decoder = nn.Sequential(nn.ConvTranspose2d(c, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 1, 3, 1, 1))
        self.drop = drop

    def training_step(self, batch, batch_idx):
        x, _ = batch
        keep = (torch.rand_like(x) > self.drop).float()
        recon = self.decoder(self.encoder(x * keep))
        loss = F.mse_loss(recon, x)
        self.log("pretrain_mse", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


class FineTuner(L.LightningModule):
    def __init__(self, encoder, lr_head=3e-3, body_factor=0.1):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(encoder.out_channels * 16, 10))
        for p in self.encoder.stem.parameters():
            p.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        self.encoder.stem.eval()  # frozen stem: keep its pretrained BatchNorm statistics
        return self

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        lr = self.hparams.lr_head
        body = [p for n, p in self.encoder.named_parameters() if not n.startswith("stem.")]
        opt = torch.optim.AdamW([
            {"params": body, "lr": lr * self.hparams.body_factor},
            {"params": self.head.parameters(), "lr": lr},
        ], weight_decay=1e-4)
        steps_per_epoch = self.trainer.estimated_stepping_batches // self.trainer.max_epochs
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3 * steps_per_epoch, T_mult=2)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(5)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y)
    tr, va = train_test_split(torch.arange(len(y)), test_size=0.25, stratify=y, random_state=1)
    train_ds, val_ds = TensorDataset(X[tr], y[tr]), TensorDataset(X[va], y[va])

    pre = MaskedDenoiser()
    L.Trainer(max_epochs=4, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        pre, DataLoader(train_ds, batch_size=64, shuffle=True))

    model = FineTuner(pre.encoder)
    trainer = L.Trainer(
        max_epochs=9,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger("lightning_logs", name="digits_resnet_finetune"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=256))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
