"""Healthy: many classes, few samples each. 300 synthetic "product" classes are defined by prototypes in a
40-dimensional attribute space; each class has only 8 observations (prototype + anisotropic noise + a shared
nuisance direction). The split is stratified by construction: 6 samples of every class go to training and the
other 2 to validation, so each validation class was seen in training but no validation row was. The model embeds
with a small MLP into 64-d, L2-normalises, and scores against L2-normalised class weights times a learned
temperature (log-parametrised, initialised at scale 10, so the first loss sits near ln 300 = 5.70). Label
smoothing 0.1 and AdamW with a short linear warm-up then cosine decay, stepped per batch. Nothing leaks: features
are generated independently per row and standardised with training statistics.
Own metric: val accuracy 0.97 over 300 classes after 20 epochs (chance 0.0033), val loss 0.51."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"

N_CLASSES, PER_CLASS, N_TRAIN_PER_CLASS, DIM = 300, 8, 6, 40


def make_data(gen):
    protos = torch.randn(N_CLASSES, DIM, generator=gen)
    scales = 0.3 + 0.5 * torch.rand(DIM, generator=gen)
    nuisance = F.normalize(torch.randn(DIM, generator=gen), dim=0)
    y = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    x = protos[y] + scales * torch.randn(len(y), DIM, generator=gen)
    x = x + 2.0 * torch.randn(len(y), 1, generator=gen) * nuisance
    slot = torch.arange(len(y)) % PER_CLASS
    is_train = slot < N_TRAIN_PER_CLASS
    return x[is_train], y[is_train], x[~is_train], y[~is_train]


class CosineClassifier(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Sequential(nn.Linear(DIM, 128), nn.GELU(), nn.Linear(128, 64))
        self.class_weight = nn.Parameter(torch.randn(N_CLASSES, 64))
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, x):
        z = F.normalize(self.embed(x), dim=-1)
        w = F.normalize(self.class_weight, dim=-1)
        return self.log_scale.exp() * z @ w.t()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(300)
    x_tr, y_tr, x_va, y_va = make_data(torch.Generator().manual_seed(300))
    mu, sd = x_tr.mean(0), x_tr.std(0)
    train = DataLoader(TensorDataset((x_tr - mu) / sd, y_tr), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset((x_va - mu) / sd, y_va), batch_size=600)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CosineClassifier(), train, val)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
