"""Healthy: transfer learning on digits with layer-wise learning-rate decay. A 3-block MLP backbone (Linear-BatchNorm-
ReLU x 3) is pretrained in a plain torch loop on digits 0-4 (all their images, 8 epochs). It is then fine-tuned in
Lightning on digits 5-9 with only 30 labelled images per class (150 rows), a new 5-way head, batch size 16;
validation on the remaining 5-9 images.

Fine-tuning recipe: AdamW parameter groups with layer-wise decay (head lr 3e-3, then x0.5 per block going down:
block3 1.5e-3, block2 7.5e-4, block1 3.75e-4), one shared warm-up + cosine LambdaLR that scales every group by the
same factor (so the ratios survive), and the backbone's BatchNorm layers frozen: their affine parameters have
requires_grad=False and the modules are put back in eval mode at the start of every training epoch, so they keep the
running statistics estimated on ~900 pretraining images instead of re-estimating them from 16-image batches of a
150-image set.

Why it is correct: every trainable parameter (all Linear weights/biases of the backbone and the head) is in exactly
one group and every group has a non-zero lr after warm-up; the frozen BN parameters are deliberately outside the
optimizer and get no updates; the BN statistics are meaningful (computed on the same pixel space by pretraining),
and eval-mode BN makes each sample's output independent of its batch. Result: val acc 0.965 (val loss 0.133) on
unseen 5-9 images from 150 labels."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"


def block(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())


def make_backbone():
    return nn.Sequential(block(64, 128), block(128, 128), block(128, 64))


def pretrain(backbone, x, y, epochs=8):
    head = nn.Linear(64, 5)
    opt = torch.optim.Adam(list(backbone.parameters()) + list(head.parameters()), lr=2e-3)
    backbone.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


class FewShotFinetuner(L.LightningModule):
    def __init__(self, backbone, head_lr=3e-3, decay=0.5, warmup=20):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(64, 5)
        for bn in self._batchnorms():
            bn.weight.requires_grad_(False)
            bn.bias.requires_grad_(False)

    def _batchnorms(self):
        return [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm1d)]

    def on_train_epoch_start(self):
        for bn in self._batchnorms():
            bn.eval()

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        hp = self.hparams
        groups = [{"params": list(self.head.parameters()), "lr": hp.head_lr}]
        for depth, blk in enumerate(reversed(self.backbone), start=1):
            groups.append({"params": [p for p in blk.parameters() if p.requires_grad],
                           "lr": hp.head_lr * hp.decay ** depth})
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches

        def factor(step):
            if step < hp.warmup:
                return (step + 1) / hp.warmup
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - hp.warmup) / max(1, total - hp.warmup)))

        return [opt], [{"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor), "interval": "step"}]


def main():
    L.seed_everything(2310)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    src = y < 5
    mean, std = x[src].mean(0), x[src].std(0) + 0.1
    x = (x - mean) / std
    backbone = make_backbone()
    pretrain(backbone, x[src], y[src])
    g = torch.Generator().manual_seed(4)
    few, rest = [], []
    for c in range(5, 10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        few.append(idx[:30])
        rest.append(idx[30:])
    few, rest = torch.cat(few), torch.cat(rest)
    model = FewShotFinetuner(backbone)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[few], y[few] - 5), batch_size=16, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(x[rest], y[rest] - 5), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
