"""Healthy: sound event detection with a CRNN. Synthetic clips of variable length (1.5-4 k samples) with
overlapping events of three kinds - tonal beeps, broadband knocks, low hums - over noise. Features: log-power STFT
(n_fft 128, hop 64) standardised per frequency bin with training statistics; clips are padded to the batch's
longest, and the collate returns a frame mask. Model: two conv blocks pooling over frequency only, a BiGRU over
frames, a per-frame linear head (multi-label: events overlap). Loss: per-frame BCE with per-class pos_weight from
the training frame prevalence, averaged over real frames only (padding ignored). Final val frame-level micro F1
about 0.95."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
N_FFT, HOP, N_CLS = 128, 64, 3


def make_clip(g):
    n = int(torch.randint(1500, 4001, (1,), generator=g))
    t = torch.arange(n).float()
    wave = 0.3 * torch.randn(n, generator=g)
    active = torch.zeros(N_CLS, n)
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        k = int(torch.randint(0, N_CLS, (1,), generator=g))
        start = int(torch.randint(0, n - 300, (1,), generator=g))
        length = int(torch.randint(200, 900, (1,), generator=g))
        sl = slice(start, min(n, start + length))
        amp = 0.5 + float(torch.rand(1, generator=g))
        if k == 0:
            src = torch.sin(6.283 * (0.2 + 0.1 * float(torch.rand(1, generator=g))) * t[sl])
        elif k == 1:
            src = torch.randn(sl.stop - start, generator=g) * (torch.rand(sl.stop - start, generator=g) < 0.05)
            src = src * 4
        else:
            src = torch.sin(6.283 * (0.02 + 0.01 * float(torch.rand(1, generator=g))) * t[sl])
        wave[sl] += amp * src
        active[k, sl] = 1
    return wave, active


def featurize(wave, active):
    spec = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True, center=True)
    logp = torch.log(spec.abs() ** 2 + 1e-6).T                                     # (frames, bins)
    frames = logp.shape[0]
    centers = (torch.arange(frames) * HOP).clamp(max=wave.shape[0] - 1)
    labels = active[:, centers].T                                                  # (frames, classes)
    return logp, labels


def dataset(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [featurize(*make_clip(g)) for _ in range(n)]


def collate(items):
    lens = torch.tensor([f.shape[0] for f, _ in items])
    T = int(lens.max())
    feats = torch.zeros(len(items), T, items[0][0].shape[1])
    labels = torch.zeros(len(items), T, N_CLS)
    for i, (f, y) in enumerate(items):
        feats[i, : f.shape[0]] = f
        labels[i, : f.shape[0]] = y
    mask = torch.arange(T)[None] < lens[:, None]
    return {"feats": feats, "labels": labels, "mask": mask}


class CRNN(L.LightningModule):
    def __init__(self, pos_weight, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("pos_weight", torch.as_tensor(pos_weight))
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d((1, 4)),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d((1, 4)))
        self.gru = nn.GRU(32 * (65 // 16), 64, batch_first=True, bidirectional=True)
        self.head = nn.Linear(128, N_CLS)

    def forward(self, feats):
        h = self.conv(feats.unsqueeze(1))                       # (B, C, T, F')
        h = h.permute(0, 2, 1, 3).flatten(2)                    # (B, T, C * F')
        return self.head(self.gru(h)[0])

    def masked_bce(self, logits, labels, mask):
        per = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.pos_weight, reduction="none")
        return (per * mask[..., None]).sum() / (mask.sum() * N_CLS)

    def training_step(self, batch, batch_idx):
        loss = self.masked_bce(self(batch["feats"]), batch["labels"], batch["mask"])
        self.log("train_loss", loss, batch_size=len(batch["mask"]))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["feats"])
        m = batch["mask"][..., None].expand_as(logits)
        pred, y = (logits > 0)[m], batch["labels"].bool()[m]
        tp = (pred & y).sum()
        f1 = 2 * tp / (pred.sum() + y.sum()).clamp(min=1)
        self.log("val_loss", self.masked_bce(logits, batch["labels"], batch["mask"]), batch_size=len(m))
        self.log("val_f1", f1, batch_size=len(m))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_f1"}}


def main():
    L.seed_everything(606)
    train, val = dataset(500, seed=1), dataset(150, seed=2)
    allf = torch.cat([f for f, _ in train])
    mu, sd = allf.mean(0), allf.std(0)
    train = [((f - mu) / sd, y) for f, y in train]
    val = [((f - mu) / sd, y) for f, y in val]
    prev = torch.cat([y for _, y in train]).mean(0)
    model = CRNN(pos_weight=((1 - prev) / prev).clamp(max=10.0).tolist())
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="sed_crnn"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=75, collate_fn=collate))
    model.eval()
    tp = npred = npos = 0
    with torch.no_grad():
        for batch in DataLoader(val, batch_size=75, collate_fn=collate):
            logits = model(batch["feats"])
            m = batch["mask"][..., None].expand_as(logits)
            pred, y = (logits > 0)[m], batch["labels"].bool()[m]
            tp, npred, npos = tp + (pred & y).sum().item(), npred + pred.sum().item(), npos + y.sum().item()
    print(f"SYMPTOM val_frame_f1={2 * tp / (npred + npos):.3f} prevalence={[round(p, 3) for p in prev.tolist()]}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
