"""Healthy: x-vector style speaker identification on synthetic filterbank utterances (each speaker has a spectral
envelope and pitch-like ripple, each utterance random phonetic content, channel gain and noise). A dilated TDNN
(Conv1d + BatchNorm) feeds masked statistics pooling (mean and std over the valid frames of variable-length,
zero-padded utterances), a 64-d embedding, and an additive-angular-margin (AAM / ArcFace) softmax head with scale 30
and margin 0.2: cosine logits with a margin on the target class, so the loss starts well above ln(40) by design.
Adam with a OneCycle schedule. Final: val speaker accuracy 0.89 (40 speakers) on unseen utterances."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
N_SPK, BANDS = 40, 30


def make_utterances(per_speaker, seed):
    g = torch.Generator().manual_seed(0)
    envelopes = torch.randn(N_SPK, BANDS, generator=g).cumsum(-1) * 0.1
    ripple = 2 + 4 * torch.rand(N_SPK, generator=g)
    phones = torch.randn(12, BANDS, generator=g)
    bands = torch.arange(BANDS).float()
    g = torch.Generator().manual_seed(seed)
    out = []
    for spk in range(N_SPK):
        voice = envelopes[spk] + 0.5 * torch.cos(bands * ripple[spk] / BANDS * math.pi)
        for _ in range(per_speaker):
            n = int(torch.randint(40, 90, (1,), generator=g))
            content = phones[torch.randint(0, 12, (n // 5 + 1,), generator=g)].repeat_interleave(5, 0)[:n]
            x = voice + content + 0.3 * torch.randn(1, generator=g) + 1.5 * torch.randn(n, BANDS, generator=g)
            out.append((x, spk))
    return out


def collate(batch):
    feats = nn.utils.rnn.pad_sequence([x for x, _ in batch], batch_first=True)
    return {"features": feats, "lengths": torch.tensor([len(x) for x, _ in batch]),
            "speaker": torch.tensor([s for _, s in batch])}


class AAMSoftmax(nn.Module):
    def __init__(self, dim, n_classes, scale=30.0, margin=0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb, target=None):
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-6, 1 - 1e-6)
        if target is None:
            return self.scale * cos
        theta = torch.acos(cos)
        target_logit = torch.cos(theta + self.margin)
        onehot = F.one_hot(target, cos.size(1)).bool()
        return self.scale * torch.where(onehot, target_logit, cos)


class XVector(L.LightningModule):
    def __init__(self, channels=96, emb=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        def tdnn(i, o, k, d):
            return nn.Sequential(nn.Conv1d(i, o, k, dilation=d, padding=d * (k - 1) // 2), nn.ReLU(), nn.BatchNorm1d(o))
        self.frames = nn.Sequential(tdnn(BANDS, channels, 5, 1), tdnn(channels, channels, 3, 2),
                                    tdnn(channels, channels, 3, 3), tdnn(channels, 2 * channels, 1, 1))
        self.segment = nn.Linear(4 * channels, emb)
        self.aam = AAMSoftmax(emb, N_SPK)

    def embed(self, features, lengths):
        h = self.frames(features.transpose(1, 2))                     # (B, C, T)
        mask = (torch.arange(h.size(2), device=h.device)[None] < lengths[:, None]).unsqueeze(1).float()
        n = mask.sum(-1)
        mean = (h * mask).sum(-1) / n
        var = ((h - mean.unsqueeze(-1)) ** 2 * mask).sum(-1) / n
        return self.segment(torch.cat([mean, var.clamp_min(1e-5).sqrt()], dim=1))

    def training_step(self, batch, batch_idx):
        logits = self.aam(self.embed(batch["features"], batch["lengths"]), batch["speaker"])
        loss = F.cross_entropy(logits, batch["speaker"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        emb = self.embed(batch["features"], batch["lengths"])
        self.log("val_loss", F.cross_entropy(self.aam(emb, batch["speaker"]), batch["speaker"]))
        self.log("val_acc", (self.aam(emb).argmax(-1) == batch["speaker"]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(77)
    train, val = make_utterances(30, 1), make_utterances(6, 2)
    model = XVector()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="xvector_aam"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=120, collate_fn=collate))
    print(f"SYMPTOM val_speaker_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
