"""Bug: a small Vision Transformer on the scikit-learn 8x8 digits (2x2 patches -> 16 tokens + a [CLS] token,
learned position embeddings, 2 pre-norm encoder layers, AdamW). To get more data, the user augments offline: every
image is written out with two photometrically jittered copies (contrast 0.85-1.15, pixel noise), and the enlarged tensor is then cut
with `random_split` into train and validation. Almost every validation image has its original or a
sibling copy in the training set, so validation measures memorisation of near-duplicates. Symptom: val acc 0.999 on the
leaky split vs 0.971 on jittered copies of held-out images when the split is made per original image before
augmenting."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout17"


def jittered_copies(images, copies=2, seed=5):
    """images (N, 8, 8) -> ((copies + 1) N, 8, 8): original plus photometric jitter (contrast, pixel noise)."""
    g = torch.Generator().manual_seed(seed)
    out = [images]
    for _ in range(copies):
        contrast = 0.85 + 0.3 * torch.rand(len(images), 1, 1, generator=g)
        noise = 0.05 * torch.randn(images.shape, generator=g)
        out.append((images * contrast + noise).clamp(0, 1))
    return torch.cat(out)


class TinyViT(L.LightningModule):
    def __init__(self, d=64, depth=2, heads=4, patch=2, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        n = (8 // patch) ** 2
        self.patch_embed = nn.Linear(patch * patch, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def patchify(self, x):
        p = self.hparams.patch
        b = x.shape[0]
        x = x.view(b, 8 // p, p, 8 // p, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, -1, p * p)

    def forward(self, x):
        tokens = self.patch_embed(self.patchify(x))
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens))[:, 0])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(-1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(77)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target)
    aug_x, aug_y = jittered_copies(images), labels.repeat(3)
    n_val = int(0.2 * len(aug_x))
    train, val = random_split(TensorDataset(aug_x, aug_y), [len(aug_x) - n_val, n_val],
                              generator=torch.Generator().manual_seed(0))
    model = TinyViT()
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="vit_digits_aug"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
