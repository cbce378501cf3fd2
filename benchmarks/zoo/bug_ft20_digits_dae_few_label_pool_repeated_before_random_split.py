"""Bug: semi-supervised transfer on sklearn's digits. A denoising MLP autoencoder is pretrained on all 1797 images
without labels (Gaussian noise + pixel dropout, MSE to the clean image); then only 200 labelled images are used to
fine-tune the encoder with a new softmax head: the encoder is frozen for the first 3 epochs (head warm-up) and then
unfrozen with a 10x lower learning rate than the head.

The labelled pool is tiny, so to get longer epochs the user wraps it as `ConcatDataset([labelled] * 4)` and only
then calls `random_split(..., [0.8, 0.2])` to carve out a validation set. Almost every validation image also sits
in the training set (up to three more copies of it), so validation measures memorisation of the 200 labelled
images. Nothing fails; the curve just looks great. Symptom: val acc 1.000 / val loss 0.010 vs 0.925 / 0.697 when the
pool is split first and only the training part is repeated (accuracy on the 1597 never-labelled images: 0.936 vs
0.915, so the bugged validation overstates it)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout20"
N_LABELLED = 200
REPEAT = 4


def encoder():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())


class DenoisingAE(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = encoder()
        self.decoder = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 64))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        noisy = (x + 0.2 * torch.randn_like(x)) * (torch.rand_like(x) > 0.2)
        loss = F.mse_loss(self.decoder(self.encoder(noisy)), x)
        self.log("recon_loss", loss, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


class FewLabelClassifier(L.LightningModule):
    def __init__(self, encoder, freeze_epochs=3, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.encoder(x))

    def on_train_epoch_start(self):
        frozen = self.current_epoch < self.hparams.freeze_epochs
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)

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
        return torch.optim.Adam([
            {"params": self.encoder.parameters(), "lr": self.hparams.lr / 10},
            {"params": self.head.parameters(), "lr": self.hparams.lr},
        ])


def main():
    L.seed_everything(77)
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)

    dae = DenoisingAE()
    pre = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                    enable_checkpointing=False, enable_model_summary=False)
    pre.fit(dae, DataLoader(TensorDataset(X), batch_size=64, shuffle=True))

    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:N_LABELLED]
    labelled = TensorDataset(X[idx], y[idx])
    pool = ConcatDataset([labelled] * REPEAT)
    train_set, val_set = random_split(pool, [0.8, 0.2], generator=torch.Generator().manual_seed(1))

    model = FewLabelClassifier(dae.encoder)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(train_set, batch_size=32, shuffle=True), DataLoader(val_set, batch_size=128))
    m = trainer.callback_metrics
    rest = torch.ones(len(X), dtype=torch.bool)
    rest[idx] = False
    model.eval()
    with torch.no_grad():
        unseen_acc = (model(X[rest]).argmax(1) == y[rest]).float().mean()
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} n_val={len(val_set)} unseen_acc={float(unseen_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
