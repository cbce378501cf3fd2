"""Bug: multi-task CNN on synthetic 16x16 images containing one shape (square, disk or cross) of random size,
position and brightness on a noisy background. A shared conv trunk with BatchNorm feeds three heads: shape class
(cross-entropy), size (Huber on the standardised radius) and centre position (MSE on the standardised x, y).
The total loss is `(weights * torch.stack([cls, size, pos])).sum()` with the task weights from the hyper-parameters,
`(1.0, 0.5, 0.5)`, moved next to the batch with `torch.tensor(weights).to(shape)`. `Tensor.to(other)` copies the
other tensor's dtype as well as its device, and `shape` holds int64 class ids: the weights become `[1, 0, 0]`.
Both regression heads are multiplied by zero and get all-zero gradients; only the classifier trains.
Why a user writes it: `.to(x)` is the usual device-agnostic way to move a constant next to the batch, and here the
nearest batch tensor happened to be the labels.
Symptom: val size MAE 1.22 / position MAE 1.12 (standardised; predicting the mean gives 0.87 / 0.76) vs 0.19 / 0.11
when the weights stay float; shape accuracy is 0.90 vs 0.91."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout12"

SIZE = 16


def render_shapes(n, seed):
    g = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, 3, (n,), generator=g)
    radius = 2.0 + 3.5 * torch.rand(n, generator=g)
    cx = radius + (SIZE - 1 - 2 * radius) * torch.rand(n, generator=g)
    cy = radius + (SIZE - 1 - 2 * radius) * torch.rand(n, generator=g)
    bright = 0.6 + 0.8 * torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                            indexing="ij")
    dx = (xx[None] - cx[:, None, None]).abs()
    dy = (yy[None] - cy[:, None, None]).abs()
    r = radius[:, None, None]
    square = (dx <= r) & (dy <= r)
    disk = dx ** 2 + dy ** 2 <= r ** 2
    cross = ((dx <= r / 3) & (dy <= r)) | ((dy <= r / 3) & (dx <= r))
    mask = torch.where(kind[:, None, None] == 0, square, torch.where(kind[:, None, None] == 1, disk, cross))
    img = bright[:, None, None] * mask.float() + 0.25 * torch.randn(n, SIZE, SIZE, generator=g)
    size_t = (radius - 3.75) / 1.0
    pos_t = (torch.stack([cx, cy], dim=1) - 7.5) / 2.5
    return img.unsqueeze(1), kind, size_t, pos_t


class MultiTaskCNN(L.LightningModule):
    def __init__(self, task_weights=(1.0, 0.5, 0.5), lr=2e-3):
        super().__init__()
        self.save_hyperparameters()

        def block(c_in, c_out, stride):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

        self.trunk = nn.Sequential(block(1, 24, 1), block(24, 32, 2), block(32, 48, 2), block(48, 48, 1),
                                   nn.Flatten(), nn.Linear(48 * 4 * 4, 128), nn.ReLU())
        self.cls_head = nn.Linear(128, 3)
        self.size_head = nn.Linear(128, 1)
        self.pos_head = nn.Linear(128, 2)

    def forward(self, x):
        h = self.trunk(x)
        return self.cls_head(h), self.size_head(h).squeeze(-1), self.pos_head(h)

    def _losses(self, batch):
        x, shape, size, pos = batch
        logits, size_hat, pos_hat = self(x)
        losses = torch.stack([F.cross_entropy(logits, shape), F.huber_loss(size_hat, size),
                              F.mse_loss(pos_hat, pos)])
        return losses, logits, size_hat, pos_hat

    def training_step(self, batch, batch_idx):
        losses, *_ = self._losses(batch)
        shape = batch[1]
        weights = torch.tensor(self.hparams.task_weights).to(shape)
        loss = (weights * losses).sum()
        self.log_dict({"train_loss": loss, "train_cls": losses[0], "train_size": losses[1], "train_pos": losses[2]})
        return loss

    def validation_step(self, batch, batch_idx):
        _, shape, size, pos = batch
        losses, logits, size_hat, pos_hat = self._losses(batch)
        self.log_dict({
            "val_cls": losses[0],
            "val_acc": (logits.argmax(1) == shape).float().mean(),
            "val_size_mae": (size_hat - size).abs().mean(),
            "val_pos_mae": (pos_hat - pos).abs().mean(),
        })

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(101)
    train = TensorDataset(*render_shapes(3000, seed=1))
    val = TensorDataset(*render_shapes(600, seed=2))
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="shapes_multitask"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(MultiTaskCNN(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    v = val.tensors
    print(f"SYMPTOM baseline size_mae={float((v[2] - v[2].mean()).abs().mean()):.3f} "
          f"pos_mae={float((v[3] - v[3].mean(0)).abs().mean()):.3f}")
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_size_mae={float(m['val_size_mae']):.3f} "
          f"val_pos_mae={float(m['val_pos_mae']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
