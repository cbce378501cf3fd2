"""Healthy: early-deterioration classifier on irregularly sampled lab series (lactate, creatinine, WBC measured at
random times, each lab missing most of the time). Inputs per hourly slot: last-observation-carried-forward values
(only past readings), an observed mask and log1p(hours since that lab was last measured) - a GRU-D-style input with
a learned exponential decay of the carried-forward value towards the training mean. Only ~12 % of stays
deteriorate, handled with a class-weighted cross-entropy; small batches with accumulate_grad_batches=4 and Adam
with weight decay. Lab values are standardised with training-set statistics.
Final: val AUROC 0.99, balanced acc 0.96."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout20"
HOURS, LABS = 36, 3

L.seed_everything(1999)


def simulate_stays(n, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.arange(HOURS, dtype=torch.float32)
    bad = torch.rand(n, generator=g) < 0.12
    onset = torch.randint(8, 28, (n, 1), generator=g).float()
    slope = torch.tensor([0.12, 0.06, 0.10]) * (0.5 + torch.rand(n, LABS, generator=g))
    ramp = (h.view(1, HOURS, 1) - onset.unsqueeze(-1)).clamp(min=0) * slope.unsqueeze(1)
    base = torch.tensor([1.5, 1.0, 9.0]) + torch.tensor([0.5, 0.3, 2.5]) * torch.randn(n, 1, LABS, generator=g)
    values = base + ramp * bad.view(n, 1, 1) * torch.tensor([1.0, 1.0, 8.0])
    values = values + torch.tensor([0.3, 0.15, 1.5]) * torch.randn(n, HOURS, LABS, generator=g)
    observed = torch.rand(n, HOURS, LABS, generator=g) < torch.tensor([0.25, 0.12, 0.18])
    observed[:, 0] = True
    return values, observed, bad.long()


def gru_d_inputs(values, observed, mean, std):
    z = (values - mean) / std
    carried = torch.zeros_like(z)
    since = torch.zeros_like(z)
    last = z[:, 0]
    gap = torch.zeros_like(last)
    for t in range(HOURS):
        gap = torch.where(observed[:, t], torch.zeros_like(gap), gap + 1)
        last = torch.where(observed[:, t], z[:, t], last)
        carried[:, t], since[:, t] = last, gap
    return torch.cat([carried, observed.float(), torch.log1p(since)], dim=2)


class DecayGRU(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3, class_weights=(1.0, 1.0)):
        super().__init__()
        self.save_hyperparameters()
        self.decay = nn.Linear(LABS, LABS)
        self.gru = nn.GRU(3 * LABS, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        self.register_buffer("class_w", torch.tensor(class_weights))

    def forward(self, x):
        carried, mask, log_gap = x[..., :LABS], x[..., LABS:2 * LABS], x[..., 2 * LABS:]
        gamma = torch.exp(-F.relu(self.decay(log_gap)))          # decay towards the (zero) training mean
        out, _ = self.gru(torch.cat([carried * gamma, mask, log_gap], dim=-1))
        return self.head(out[:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_w)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y, weight=self.class_w))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


if __name__ == "__main__":
    v_tr, o_tr, y_tr = simulate_stays(1800, seed=1)
    v_va, o_va, y_va = simulate_stays(500, seed=2)
    mean = torch.stack([v_tr[..., k][o_tr[..., k]].mean() for k in range(LABS)])
    std = torch.stack([v_tr[..., k][o_tr[..., k]].std() for k in range(LABS)])
    x_tr, x_va = gru_d_inputs(v_tr, o_tr, mean, std), gru_d_inputs(v_va, o_va, mean, std)
    pos = y_tr.float().mean().item()
    model = DecayGRU(class_weights=(0.5 / (1 - pos), 0.5 / pos))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        accumulate_grad_batches=4, logger=TensorBoardLogger("lightning_logs", name="seq20_lab_gru_d"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=250))
    model.eval()
    with torch.no_grad():
        prob = model(x_va).softmax(1)[:, 1]
    print(f"SYMPTOM val_auroc={roc_auc_score(y_va, prob):.3f} "
          f"val_balanced_acc={balanced_accuracy_score(y_va, (prob > 0.5).long()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
