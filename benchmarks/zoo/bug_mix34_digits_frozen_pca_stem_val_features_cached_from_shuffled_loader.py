"""Bug: digit classifier (8x8 sklearn digits) fine-tuned on top of a frozen stem: a 32-component PCA projection
fitted on the training images and loaded into a `requires_grad=False` linear layer, followed by a trainable MLP
head. Training images are augmented (random one-pixel shifts plus pixel noise), so they go through the frozen stem
online; validation images never change, so their stem features are computed once in `setup` and cached. The cache
loop reuses the training loader settings, `DataLoader(val_images, batch_size=128, shuffle=True)`, and stacks only
the features, while the labels are taken from `val_labels` in their original order: cached features and labels no
longer line up. Training is untouched (the augmented train loss falls to 0.55, the model is good), but validation
scores each prediction against another image's label, ending far worse than the class prior. Symptom: val accuracy
0.131 / loss 5.15 (class prior: 0.10 / 2.30) against 0.914 / 0.358 when the cache loader is not shuffled."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout34"


def shift_and_noise(images, g):
    img = images.view(-1, 8, 8)
    dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
    img = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    return (img + 0.05 * torch.randn(img.shape, generator=g)).view(-1, 64)


class FrozenStemClassifier(L.LightningModule):
    def __init__(self, components, mean, val_images, val_labels, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["components", "mean", "val_images", "val_labels"])
        self.stem = nn.Linear(64, components.shape[0])
        with torch.no_grad():
            self.stem.weight.copy_(components)
            self.stem.bias.copy_(-components @ mean)
        self.stem.requires_grad_(False)
        self.head = nn.Sequential(nn.Linear(components.shape[0], hidden), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(hidden, 10))
        self.val_images, self.val_labels = val_images, val_labels
        self.aug = torch.Generator().manual_seed(34)

    def setup(self, stage):
        with torch.no_grad():
            loader = DataLoader(self.val_images, batch_size=128, shuffle=True)
            self.val_features = torch.cat([self.stem(x) for x in loader])

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.val_features, self.val_labels), batch_size=256)

    def forward(self, images):
        return self.head(self.stem(images))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(shift_and_noise(x, self.aug)), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        feats, y = batch
        logits = self.head(feats)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.head.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def main():
    L.seed_everything(34)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(34))
    tr, va = perm[:1400], perm[1400:]
    pca = PCA(n_components=32, random_state=34).fit(x[tr].numpy())
    model = FrozenStemClassifier(torch.tensor(pca.components_, dtype=torch.float32),
                                 torch.tensor(pca.mean_, dtype=torch.float32), x[va], y[va])
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dataloaders=DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
