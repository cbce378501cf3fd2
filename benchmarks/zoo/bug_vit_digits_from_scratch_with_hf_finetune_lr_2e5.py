"""Bug: a small Vision Transformer (2x2 patches of the 8x8 scikit-learn digits, CLS token, learned position
embeddings, 3 pre-norm blocks) trained from scratch, HF-style: the model takes `pixel_values`/`labels` and returns
an output with `.loss` and `.logits`. The optimiser settings were copied from the "fine-tune ViT on your images"
tutorial (`TrainingArguments(learning_rate=2e-5, weight_decay=0.01, warmup_ratio=0.1)`), which assumes a pretrained
checkpoint. From a random init every AdamW step moves the weights by about 1e-5 of their size, so after 12 epochs the
network has barely left its initialisation. Symptom: val acc 0.25 / val loss 2.20 vs 0.92 / 0.29 with lr=1e-3."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"update-ratio"}
SPLIT = "heldout17"
LEARNING_RATE = 2e-5


@dataclass
class ImageClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class DigitImages(Dataset):
    def __init__(self, x, y):
        self.x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
        self.x = (self.x - 0.3) / 0.4
        self.y = torch.tensor(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class TinyViTForImageClassification(nn.Module):
    def __init__(self, patch=2, d=64, depth=3, heads=4, num_labels=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, d, patch, stride=patch)
        n = (8 // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, num_labels)

    def forward(self, pixel_values, labels=None):
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos_embed
        logits = self.classifier(self.norm(self.blocks(x))[:, 0])
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


class ViTModule(L.LightningModule):
    def __init__(self, total_steps):
        super().__init__()
        self.model = TinyViTForImageClassification()
        self.total_steps = total_steps

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
        warmup = int(0.1 * self.total_steps)

        def linear_warmup_decay(step):
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (self.total_steps - step) / (self.total_steps - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(417)
    digits = load_digits()
    xtr, xva, ytr, yva = train_test_split(digits.data, digits.target, test_size=0.2, random_state=0,
                                          stratify=digits.target)
    train_dl = DataLoader(DigitImages(xtr, ytr), batch_size=32, shuffle=True)
    val_dl = DataLoader(DigitImages(xva, yva), batch_size=256)
    epochs = 12
    module = ViTModule(total_steps=epochs * len(train_dl))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="vit_hf_lr"), enable_checkpointing=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(module, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
