"""Healthy: a hypernetwork for a family of regression tasks. There are 48 synthetic tasks, each a sinusoid y = a *
sin(b * x + phase) + 0.05 noise with its own amplitude, frequency and phase, observed at 40 random points in [-3,
3]. A learned task embedding feeds a hypernetwork MLP that emits *all* weights of a per-task target network (1 -> 32
-> 32 -> 1, tanh); the target network is then applied sample by sample with batched matrix products, so each row
only ever sees its own task's generated weights (no mixing across the batch). The hypernetwork's outputs are
multiplied by a fixed buffer of 1/sqrt(fan_in) per generated tensor, so the generated weights have a fan-in-
appropriate size, which keeps the first outputs small (std 0.04), so the first loss sits at the targets' second
moment. Validation uses 15 fresh points per task drawn independently of the training points (same tasks, new inputs
-- the intended use is interpolation within known tasks). MSE loss, Adam, ReduceLROnPlateau on val MSE. Own metric:
val MSE 0.013 (train 0.012) against a target second moment of 0.62; the first-batch MSE is 0.61."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"

N_TASKS, HIDDEN = 48, 32
SHAPES = [(HIDDEN, 1), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (1, HIDDEN), (1,)]
FAN_IN = [1, 1, HIDDEN, HIDDEN, HIDDEN, HIDDEN]


def make_tasks(gen, n_train=40, n_val=15):
    amp = 0.5 + 1.0 * torch.rand(N_TASKS, generator=gen)
    freq = 0.5 + 1.0 * torch.rand(N_TASKS, generator=gen)
    phase = 2 * math.pi * torch.rand(N_TASKS, generator=gen)

    def draw(n):
        task = torch.arange(N_TASKS).repeat_interleave(n)
        x = 6 * torch.rand(len(task), generator=gen) - 3
        y = amp[task] * torch.sin(freq[task] * x + phase[task]) + 0.05 * torch.randn(len(task), generator=gen)
        return task, x.unsqueeze(-1), y

    return draw(n_train), draw(n_val)


class HyperRegressor(L.LightningModule):
    def __init__(self, emb_dim=16, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.task_emb = nn.Embedding(N_TASKS, emb_dim)
        n_out = sum(math.prod(s) for s in SHAPES)
        self.hyper = nn.Sequential(nn.Linear(emb_dim, 128), nn.ReLU(), nn.Linear(128, n_out))
        scale = torch.cat([torch.full((math.prod(s),), 1.0 / math.sqrt(f)) for s, f in zip(SHAPES, FAN_IN)])
        self.register_buffer("out_scale", scale)

    def forward(self, task, x):
        flat = self.hyper(self.task_emb(task)) * self.out_scale
        params, i = [], 0
        for s in SHAPES:
            n = math.prod(s)
            params.append(flat[:, i:i + n].view(-1, *s))
            i += n
        w1, b1, w2, b2, w3, b3 = params
        h = torch.tanh(torch.bmm(w1, x.unsqueeze(-1)).squeeze(-1) + b1)
        h = torch.tanh(torch.bmm(w2, h.unsqueeze(-1)).squeeze(-1) + b2)
        return (torch.bmm(w3, h.unsqueeze(-1)).squeeze(-1) + b3).squeeze(-1)

    def training_step(self, batch, batch_idx):
        task, x, y = batch
        loss = F.mse_loss(self(task, x), y)
        self.log("train_mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        task, x, y = batch
        self.log("val_mse", F.mse_loss(self(task, x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_mse"}}


def main():
    L.seed_everything(48)
    (t_tr, x_tr, y_tr), (t_va, x_va, y_va) = make_tasks(torch.Generator().manual_seed(48))
    train = DataLoader(TensorDataset(t_tr, x_tr, y_tr), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(t_va, x_va, y_va), batch_size=720)
    trainer = L.Trainer(max_epochs=16, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HyperRegressor(), train, val)
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_mse'].item():.4f} "
          f"train_mse={trainer.callback_metrics['train_mse'].item():.4f} y2={y_tr.pow(2).mean().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
