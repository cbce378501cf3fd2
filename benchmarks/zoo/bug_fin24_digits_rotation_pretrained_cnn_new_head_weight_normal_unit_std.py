"""Bug: self-supervised pretraining then fine-tuning on scikit-learn digits. A small CNN is pretrained (short plain
PyTorch phase) to predict which of four rotations (0/90/180/270 degrees) was applied to an image; for the digit task
the rotation head is dropped, a new 10-way classifier is put on the pooled features, and everything is fine-tuned in
Lightning with AdamW (backbone 1e-3, head 5e-3) and a cosine schedule.

The new classifier is initialised by hand, `classifier.weight.data.normal_()` / `bias.data.zero_()`, the way many
`_init_weights` functions do, but without the `std=0.02` (or `1 / sqrt(fan_in)`) they pass: unit-variance weights on
128 pretrained ReLU features. The first logits have a spread of tens, the initial cross-entropy is an order of
magnitude above ln 10, and the early steps are spent shrinking the head (and pushing large, wrong gradients into the
pretrained backbone) instead of learning the classes; training still converges to something plausible. Symptom:
first-batch CE 21.5 (ln 10 = 2.30), final val acc 0.831, val CE 0.673; with `normal_(std=0.02)` first CE 2.29, val
acc 0.843, val CE 0.583."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss"}
SPLIT = "heldout24"


def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


class DigitClassifier(L.LightningModule):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(128, 10)
        self.classifier.weight.data.normal_()
        self.classifier.bias.data.zero_()

    def forward(self, x):
        return self.classifier(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        if self.global_step == 0:
            self.first_loss = float(loss)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW([{"params": self.backbone.parameters(), "lr": 1e-3},
                                 {"params": self.classifier.parameters(), "lr": 5e-3}], weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2411)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    perm = torch.as_tensor(np.random.default_rng(4).permutation(len(X)))
    tr, va = perm[:1300], perm[1300:]

    backbone, rot_head = cnn(), nn.Linear(128, 4)
    opt = torch.optim.Adam([*backbone.parameters(), *rot_head.parameters()], lr=2e-3)
    for _ in range(120):
        idx = tr[torch.randint(0, len(tr), (64,))]
        k = torch.randint(0, 4, (64,))
        xr = torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(X[idx], k)])
        opt.zero_grad()
        F.cross_entropy(rot_head(backbone(xr)), k).backward()
        opt.step()

    model = DigitClassifier(backbone)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(X[tr], y[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=500))
    m = trainer.callback_metrics
    print(f"SYMPTOM first_loss={model.first_loss:.2f} val_acc={float(m['val_acc']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
