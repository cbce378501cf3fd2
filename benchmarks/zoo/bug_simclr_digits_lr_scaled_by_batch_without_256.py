"""Bug: SimCLR-style contrastive pretraining on the 8x8 digits (two random views per image: shift, pixel noise,
cut-out; a conv encoder with BatchNorm, an MLP projection head, NT-Xent loss at temperature 0.2), evaluated by a
1-nearest-neighbour probe on the frozen encoder features. The learning rate follows the linear scaling rule from
the paper, `lr = base_lr * batch_size / 256`, but the line is written `self.hparams.base_lr * self.hparams.batch_size`
(the `/ 256` lost when the batch size became a hyper-parameter): Adam runs at lr 0.256 instead of 1e-3, every update
is a large fraction of the weights, and the encoder is knocked around instead of learning. Symptom: 1-NN probe
acc 0.79 and val NT-Xent 5.22 vs 0.99 and 3.52 with the `/ 256`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"update-ratio"}
SPLIT = "heldout10"


def augment(x):
    n = x.shape[0]
    shifts = torch.randint(-1, 2, (n, 2))
    out = torch.stack([torch.roll(img, shifts=(int(s[0]), int(s[1])), dims=(1, 2)) for img, s in zip(x, shifts)])
    out = out + 0.15 * torch.randn_like(out)
    top, left = torch.randint(0, 6, (2,))
    keep = torch.rand(n, 1, 1, 1) < 0.5
    patch = torch.zeros_like(out)
    patch[:, :, top:top + 3, left:left + 3] = 1.0
    return torch.where(keep & (patch > 0), torch.zeros_like(out), out)


def nt_xent(z1, z2, temperature):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class SimCLR(L.LightningModule):
    def __init__(self, batch_size=256, base_lr=1e-3, temperature=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.projector = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x):
        return self.encoder(x)

    def training_step(self, batch, batch_idx):
        x, _ = batch
        loss = nt_xent(self.projector(self(augment(x))), self.projector(self(augment(x))), self.hparams.temperature)
        self.log("train/nt_xent", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        loss = nt_xent(self.projector(self(augment(x))), self.projector(self(augment(x))), self.hparams.temperature)
        self.log("val/nt_xent", loss, prog_bar=True)

    def configure_optimizers(self):
        lr = self.hparams.base_lr * self.hparams.batch_size
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def probe_accuracy(model, train_x, train_y, val_x, val_y):
    model.eval()
    with torch.no_grad():
        f_train, f_val = F.normalize(model(train_x), dim=1), F.normalize(model(val_x), dim=1)
    nearest = (f_val @ f_train.t()).argmax(dim=1)
    return float((train_y[nearest] == val_y).float().mean())


def main():
    L.seed_everything(2718)
    digits = load_digits()
    x = (torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    ds = TensorDataset(x, torch.tensor(digits.target))
    train_ds, val_ds = random_split(ds, [1437, 360], generator=torch.Generator().manual_seed(6))

    batch_size = 256
    model = SimCLR(batch_size=batch_size)
    trainer = L.Trainer(
        max_epochs=25,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="simclr_digits"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=batch_size, shuffle=True, drop_last=True),
                DataLoader(val_ds, batch_size=180))
    tx, ty = ds.tensors[0][train_ds.indices], ds.tensors[1][train_ds.indices]
    vx, vy = ds.tensors[0][val_ds.indices], ds.tensors[1][val_ds.indices]
    print(f"SYMPTOM probe_1nn_acc={probe_accuracy(model, tx, ty, vx, vy):.3f} "
          f"val_nt_xent={float(trainer.callback_metrics['val/nt_xent']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
