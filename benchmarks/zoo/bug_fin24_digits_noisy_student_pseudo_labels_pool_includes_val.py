"""Bug: semi-supervised fine-tuning on scikit-learn digits, noisy-student style. Only 150 images are labelled; a
teacher MLP is trained on them in a short plain-PyTorch phase, pseudo-labels the "unlabelled pool" (kept where the
teacher is at least 80 % confident), and a student with dropout is fine-tuned in Lightning on labelled +
pseudo-labelled images with AdamW and cosine decay. 300 images are a validation split, another 300 a test split.

The unlabelled pool is built as "every image that is not in the labelled set",
`np.setdiff1d(np.arange(n), labelled_idx)`, so it also holds the validation (and test) images. The student therefore
trains on the validation images themselves, carrying the teacher's (mostly correct) labels: 274 of the 300
validation images pass the confidence filter and sit in the training set. Training looks fine and the numbers are
plausible, but validation no longer measures generalisation. Measured: val acc 0.923 / test acc 0.917 (1674 training
images); with the pool restricted to the remaining images
(`np.setdiff1d(..., np.r_[labelled_idx, val_idx, test_idx])`) val acc 0.910 / test acc 0.890 (1125 images)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout24"


def mlp(p_drop):
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(p_drop), nn.Linear(128, 128), nn.ReLU(),
                         nn.Dropout(p_drop), nn.Linear(128, 10))


class Student(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = mlp(0.3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x + 0.1 * torch.randn_like(x)), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2401)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0 - 0.5, dtype=torch.float32)
    y = torch.tensor(y)
    perm = np.random.default_rng(0).permutation(len(X))
    labelled_idx, val_idx, test_idx = perm[:150], perm[150:450], perm[450:750]

    teacher = mlp(0.0)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(teacher(X[labelled_idx]), y[labelled_idx]).backward()
        opt.step()

    pool_idx = np.setdiff1d(np.arange(len(X)), labelled_idx)
    with torch.no_grad():
        conf, pseudo = teacher(X[pool_idx]).softmax(1).max(1)
    keep = torch.as_tensor(pool_idx)[conf > 0.8]
    train_x = torch.cat([X[labelled_idx], X[keep]])
    train_y = torch.cat([y[labelled_idx], pseudo[conf > 0.8]])

    model = Student()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(X[val_idx], y[val_idx]), batch_size=300))
    model.eval()
    with torch.no_grad():
        test_acc = (model.net(X[test_idx]).argmax(1) == y[test_idx]).float().mean()
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} test_acc={float(test_acc):.3f} "
          f"train_size={len(train_x)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
