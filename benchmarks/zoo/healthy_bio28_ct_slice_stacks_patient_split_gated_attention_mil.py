"""Healthy: patient-level lesion detection from synthetic CT "scans" with multiple-instance learning. Each patient
is a stack of 8 slices of 16x16 (a soft disk of tissue plus noise); 40% of the patients have a small bright lesion
in one or two adjacent slices, and only the patient-level label is known. A small slice CNN (with BatchNorm over
all slices of the batch) embeds every slice, then gated attention pooling (Ilse et al., 2018) weighs the slices
*of one patient* (softmax over the slice axis only) and a linear head gives one logit per patient. Patients are
split 80/20, so every slice of a patient sits on one side. Adam with a short linear warm-up then constant LR.
Correct: the attention never mixes patients, the split is at patient level, BCE gets logits. Own metric: val
patient accuracy 0.969, val loss 0.077."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout28"

SLICES, SIDE = 8, 16


def make_scans(n_patients=160, seed=7):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(), indexing="ij")
    radius = 5 + 2 * torch.rand(n_patients, 1, 1, 1, generator=g)
    tissue = torch.sigmoid(radius - ((yy - 7.5) ** 2 + (xx - 7.5) ** 2).sqrt())
    scans = tissue.expand(n_patients, SLICES, SIDE, SIDE) + 0.3 * torch.randn(n_patients, SLICES, SIDE, SIDE, generator=g)
    label = (torch.rand(n_patients, generator=g) < 0.4).float()
    for i in torch.nonzero(label).flatten().tolist():
        s = int(torch.randint(0, SLICES - 1, (1,), generator=g))
        cy, cx = (int(v) for v in torch.randint(5, 11, (2,), generator=g))
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
        scans[i, s] += 1.5 * blob
        scans[i, s + 1] += 0.8 * blob
    return scans.unsqueeze(2), label


class GatedAttentionMIL(L.LightningModule):
    def __init__(self, emb=32, lr=2e-3, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, emb), nn.ReLU())
        self.att_v = nn.Linear(emb, 16)
        self.att_u = nn.Linear(emb, 16)
        self.att_w = nn.Linear(16, 1)
        self.head = nn.Linear(emb, 1)

    def forward(self, scans):
        b, s = scans.shape[:2]
        h = self.encoder(scans.flatten(0, 1)).view(b, s, -1)
        a = self.att_w(torch.tanh(self.att_v(h)) * torch.sigmoid(self.att_u(h)))  # (b, s, 1)
        a = torch.softmax(a, dim=1)
        return self.head((a * h).sum(dim=1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / self.hparams.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}


def main():
    L.seed_everything(17)
    scans, label = make_scans()
    perm = torch.randperm(len(label), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:128], perm[128:]
    train = DataLoader(TensorDataset(scans[tr], label[tr]), batch_size=8, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(scans[va], label[va]), batch_size=32)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GatedAttentionMIL(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
