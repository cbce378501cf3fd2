"""Healthy: breast-cancer diagnosis (sklearn's 30 features, StandardScaler fitted on the training split only) with
an MLP of Linear -> BatchNorm -> SiLU -> Dropout blocks, class-weighted cross-entropy (benign:malignant is about
5:3), AdamW with weight decay kept off biases and norm weights, bf16-mixed autocast on CPU, batches of 16 with
`accumulate_grad_batches=4`, gradient clipping at norm 1 and a per-step linear warm-up then cosine decay.
Final val acc 0.986, val loss 0.049, val ROC AUC 0.999."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"


def block(n_in, n_out, p):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.SiLU(), nn.Dropout(p))


class DiagnosisMLP(L.LightningModule):
    def __init__(self, class_weights, lr=3e-3, weight_decay=1e-2, warmup_steps=20):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32))
        self.net = nn.Sequential(block(30, 128, 0.3), block(128, 64, 0.3), nn.Linear(64, 2))
        self.val_scores, self.val_labels = [], []
        self.summary = {}

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).float(), y, weight=self.class_weights)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).float()
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        self.val_scores.append(logits.softmax(1)[:, 1])
        self.val_labels.append(y)

    def on_validation_epoch_end(self):
        scores, labels = torch.cat(self.val_scores), torch.cat(self.val_labels)
        self.val_scores, self.val_labels = [], []
        auc = roc_auc_score(labels.numpy(), scores.numpy()) if labels.unique().numel() == 2 else float("nan")
        self.log("val_auc", auc)
        m = self.trainer.callback_metrics
        self.summary = {"val_acc": float(m["val_acc"]), "val_loss": float(m["val_loss"]), "val_auc": auc}

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim == 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup_steps

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4321)
    data = load_breast_cancer()
    X, y = data.data, data.target
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.25, random_state=6, stratify=y)
    scaler = StandardScaler().fit(Xt)
    Xt, Xv = scaler.transform(Xt).astype(np.float32), scaler.transform(Xv).astype(np.float32)
    counts = np.bincount(yt, minlength=2)
    class_weights = counts.sum() / (2 * counts)
    train = TensorDataset(torch.from_numpy(Xt), torch.from_numpy(yt).long())
    val = TensorDataset(torch.from_numpy(Xv), torch.from_numpy(yv).long())
    model = DiagnosisMLP(class_weights=class_weights.tolist())
    trainer = L.Trainer(
        max_epochs=25,
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        accumulate_grad_batches=4,
        gradient_clip_val=1.0,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="breast_cancer_bf16_mlp"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=5,
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=256))
    s = model.summary
    print(f"SYMPTOM val_acc={s['val_acc']:.3f} val_loss={s['val_loss']:.3f} val_auc={s['val_auc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
