"""Healthy: semi-supervised style fine-tuning on the breast-cancer data. An MLP encoder is first pretrained as a
denoising autoencoder on the (standardised, training-split only) features, then a classifier head is trained on top.
A `BaseFinetuning` callback keeps the encoder frozen for the first 3 epochs and then adds it to the optimizer with
`unfreeze_and_add_param_group` at a fifth of the head's learning rate, so every trainable parameter is stepped.
Validation uses two dataloaders: the clean validation split and the same rows with fixed Gaussian noise (a
robustness check); each has its own torchmetrics `BinaryAUROC`/`BinaryAccuracy` instances, logged per dataloader.
Own metric: clean val acc 0.951 / AUROC 0.987, noisy val acc 0.965 (noise at 0.3 sd barely matters here)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BaseFinetuning
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"


def make_encoder():
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU())


def pretrain_dae(encoder, x, steps=300, noise=0.3):
    decoder = nn.Linear(16, 30)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        xb = x[idx]
        recon = decoder(encoder(xb + noise * torch.randn(xb.shape, generator=gen)))
        opt.zero_grad()
        F.mse_loss(recon, xb).backward()
        opt.step()
    return encoder


class FreezeThenUnfreeze(BaseFinetuning):
    def __init__(self, unfreeze_at_epoch=3, denom=5.0):
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.denom = denom

    def freeze_before_training(self, pl_module):
        self.freeze(pl_module.encoder)

    def finetune_function(self, pl_module, current_epoch, optimizer):
        if current_epoch == self.unfreeze_at_epoch:
            self.unfreeze_and_add_param_group(pl_module.encoder, optimizer, initial_denom_lr=self.denom)


class TumourClassifier(L.LightningModule):
    def __init__(self, encoder, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Linear(16, 1)
        self.val_auroc = nn.ModuleList([BinaryAUROC(), BinaryAUROC()])
        self.val_acc = nn.ModuleList([BinaryAccuracy(), BinaryAccuracy()])

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y.float())
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y.float()))
        probs = torch.sigmoid(logits)
        self.val_auroc[dataloader_idx](probs, y)
        self.val_acc[dataloader_idx](probs, y)
        self.log("val_auroc", self.val_auroc[dataloader_idx])
        self.log("val_acc", self.val_acc[dataloader_idx])

    def configure_optimizers(self):
        return torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)


def main():
    L.seed_everything(1127)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=11, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    X_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    X_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    X_va_noisy = X_va + 0.3 * torch.randn(X_va.shape, generator=torch.Generator().manual_seed(5))
    encoder = pretrain_dae(make_encoder(), X_tr)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    val_loaders = [DataLoader(TensorDataset(X_va, y_va), batch_size=256),
                   DataLoader(TensorDataset(X_va_noisy, y_va), batch_size=256)]
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=[FreezeThenUnfreeze(), *lightning_sanity.default_callbacks()])
    trainer.fit(TumourClassifier(encoder), DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True),
                val_loaders)
    m = trainer.callback_metrics
    print(f"SYMPTOM clean_acc={m['val_acc/dataloader_idx_0'].item():.3f} "
          f"clean_auroc={m['val_auroc/dataloader_idx_0'].item():.3f} "
          f"noisy_acc={m['val_acc/dataloader_idx_1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
