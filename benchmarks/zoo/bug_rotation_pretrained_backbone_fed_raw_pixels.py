"""Bug: the fine-tuning pipeline feeds raw pixels (0..16) to a backbone pretrained on normalised ones (mean 0, std 1):
the normalisation lives in the pretraining code and was not carried over. The frozen convolutions and the frozen
BatchNorm statistics then see inputs on another scale and produce distorted features for the new head. Otherwise the
same script as the healthy twin: fine-tuning from self-supervised pretrained weights. A small CNN backbone
(conv-BN-ReLU x3, 2x2 average pooling) is first pretrained in plain PyTorch on a rotation-prediction pretext task
(which of 0/90/180/270 degrees an unlabelled digit was turned by), its `state_dict` saved with `torch.save` and
reloaded into a fresh backbone, which is then frozen (`requires_grad_(False)`, kept in eval mode) while a new
two-layer head learns the 10 digit classes with Lightning (Adam, CosineAnnealingLR) on 300 labelled images. Own
metric: val acc 0.95 (chance 0.10). Measured with the bug: val acc 0.80 vs 0.95 fixed."""

import os

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout3"
MEAN, STD = 0.3, 0.45


def normalise(images):
    return (images / 16.0 - MEAN) / STD


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten())


def pretrain_rotation(images, path, epochs=3):
    backbone, rot_head = make_backbone(), nn.Linear(256, 4)
    params = list(backbone.parameters()) + list(rot_head.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=gen).split(64):
            k = torch.randint(0, 4, (len(idx),), generator=gen)
            x = torch.stack([torch.rot90(img, int(r), (1, 2)) for img, r in zip(images[idx], k)])
            loss = F.cross_entropy(rot_head(backbone(x)), k)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(backbone.state_dict(), path)


class FrozenProbe(L.LightningModule):
    def __init__(self, weights_path, lr=1e-2, epochs=15):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = make_backbone()
        self.backbone.load_state_dict(torch.load(weights_path))
        self.backbone.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))

    def on_train_epoch_start(self):
        self.backbone.eval()  # frozen: keep the pretrained BatchNorm statistics

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(13)
    d = load_digits()
    raw = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(raw), generator=torch.Generator().manual_seed(13))
    unlabelled, labelled, val = perm[:1200], perm[1200:1500], perm[1500:]
    weights = os.path.join(os.getcwd(), "rotation_backbone.pt")
    pretrain_rotation(normalise(raw[unlabelled]), weights)

    # BUG: the pretraining normalisation is not applied here
    x_lab, x_val = raw[labelled], raw[val]
    model = FrozenProbe(weights)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_lab, y[labelled]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_val, y[val]), batch_size=256))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
