"""Healthy: a tabular MLP for a clinic's visit records (one row per visit, 6 visits per patient): static patient
fields (age, BMI, sex) repeat on every visit, lab values vary a little from visit to visit, the site is a
categorical feature with an `nn.Embedding`. The outcome is a patient-level diagnosis (some patients' outcome is not
explained by the features). The split is by patient (`GroupShuffleSplit`), scalers fitted on the training rows.
BatchNorm + dropout MLP, AdamW, ReduceLROnPlateau on val_loss. Own metric: val acc 0.70 (honest; the ceiling is 0.85: the
unexplained patients cannot be predicted)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import GroupShuffleSplit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout5"

N_PATIENTS, VISITS, N_SITES = 400, 6, 5


def make_visits(gen):
    z = torch.randn(N_PATIENTS, 6, generator=gen)  # latent patient state
    age = 55 + 12 * torch.randn(N_PATIENTS, generator=gen)
    bmi = 27 + 4 * torch.randn(N_PATIENTS, generator=gen)
    sex = torch.randint(0, 2, (N_PATIENTS,), generator=gen).float()
    site = torch.randint(0, N_SITES, (N_PATIENTS,), generator=gen)
    risk = z[:, 0] + 0.8 * z[:, 1] - 0.6 * z[:, 2] + 0.03 * (age - 55)
    y = (risk > 0).long()
    flip = torch.rand(N_PATIENTS, generator=gen) < 0.15  # outcome not explained by the records
    y = torch.where(flip, 1 - y, y)
    pid = torch.arange(N_PATIENTS).repeat_interleave(VISITS)
    labs = z[pid] + 0.15 * torch.randn(len(pid), 6, generator=gen)
    num = torch.cat([age[pid, None], bmi[pid, None], sex[pid, None], labs], 1)
    return num.numpy(), site[pid], y[pid], pid.numpy()


class VisitMLP(nn.Module):
    def __init__(self, n_num, n_sites, emb=4, hidden=64):
        super().__init__()
        self.site_emb = nn.Embedding(n_sites, emb)
        self.net = nn.Sequential(nn.Linear(n_num + emb, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(hidden, 2))

    def forward(self, num, site):
        return self.net(torch.cat([num, self.site_emb(site)], 1))


class LitVisits(L.LightningModule):
    def __init__(self, n_num):
        super().__init__()
        self.model = VisitMLP(n_num, N_SITES)

    def training_step(self, batch, batch_idx):
        num, site, y = batch
        loss = F.cross_entropy(self.model(num, site), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        num, site, y = batch
        logits = self.model(num, site)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(41)
    gen = torch.Generator().manual_seed(41)
    num, site, y, pid = make_visits(gen)
    splitter = GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    i_tr, i_va = next(splitter.split(num, groups=pid))
    mu, sd = num[i_tr].mean(0), num[i_tr].std(0) + 1e-6
    xn = torch.tensor((num - mu) / sd, dtype=torch.float32)
    i_tr, i_va = torch.as_tensor(i_tr), torch.as_tensor(i_va)
    model = LitVisits(xn.shape[1])
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(xn[i_tr], site[i_tr], y[i_tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(xn[i_va], site[i_va], y[i_va]), batch_size=512))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
