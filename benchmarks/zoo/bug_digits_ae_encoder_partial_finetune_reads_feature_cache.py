"""Bug: partial fine-tuning of a pretrained encoder on digits. The encoder (three MLP blocks, 64 -> 256 -> 128 ->
24) comes from a denoising autoencoder trained in this script on the training images and saved/reloaded with
`torch.save`/`load_state_dict`. The first version of the module was a linear probe, and to make it fast it
precomputes the encoder features of the (fixed, unaugmented) training set once in `on_fit_start` and looks them
up by sample index in `training_step`. The second version "unfreezes the top block": `block3` gets
`requires_grad=True` and its own parameter group (lr 1e-3 next to the head's 3e-3) - but `training_step` still
reads the feature cache, which was computed through `block3`, so `block3` never takes part in the training graph
and its gradient stays None at every step. Validation runs the live encoder, which never changed. The run is a
linear probe on 24-d autoencoder codes while the user believes the top block is being adapted.

Symptom (measured): val acc 0.919 (val loss 0.47) vs 0.967 (val loss 0.14) when the cache holds `block2`'s output
and `training_step` applies `block3` itself. Runtime ~7 s."""

import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout13"


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Linear(64, 256), nn.LayerNorm(256), nn.GELU())
        self.block2 = nn.Sequential(nn.Linear(256, 128), nn.LayerNorm(128), nn.GELU())
        self.block3 = nn.Sequential(nn.Linear(128, 24), nn.LayerNorm(24))

    def forward(self, x):
        return self.block3(self.block2(self.block1(x)))


def pretrain_autoencoder(x, path):
    enc = Encoder()
    dec = nn.Sequential(nn.Linear(24, 128), nn.GELU(), nn.Linear(128, 64))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        for idx in torch.randperm(len(x), generator=g).split(128):
            noisy = x[idx] + 0.3 * torch.randn(len(idx), 64, generator=g)
            loss = F.mse_loss(dec(enc(noisy)), x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(enc.state_dict(), path)


class PartialFinetune(L.LightningModule):
    def __init__(self, encoder_path, train_x, head_lr=3e-3, block3_lr=1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["train_x"])
        self.encoder = Encoder()
        self.encoder.load_state_dict(torch.load(encoder_path))
        for p in self.encoder.parameters():
            p.requires_grad = False
        for p in self.encoder.block3.parameters():   # v2: adapt the top block too
            p.requires_grad = True
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(24, 10))
        self.train_x = train_x

    def on_fit_start(self):
        with torch.no_grad():   # the training images never change, so encode them once
            self.feature_cache = self.encoder(self.train_x.to(self.device))

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        idx, y = batch
        logits = self.head(self.feature_cache[idx])
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW([
            {"params": self.encoder.block3.parameters(), "lr": self.hparams.block3_lr},
            {"params": self.head.parameters(), "lr": self.hparams.head_lr},
        ], weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs, eta_min=1e-5)
        return [opt], [sched]


if __name__ == "__main__":
    L.seed_everything(909)
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    tr, va = train_test_split(torch.arange(len(y)), test_size=0.3, random_state=1, stratify=d.target)
    path = os.path.join(tempfile.mkdtemp(), "dae_encoder.pt")
    pretrain_autoencoder(x[tr], path)
    train = DataLoader(TensorDataset(torch.arange(len(tr)), y[tr]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[va], y[va]), batch_size=256)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PartialFinetune(path, x[tr]), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
