"""Bug: a Vision Transformer digit classifier (scikit-learn 8x8 digits, 2x2 patches, [CLS] token, learned position
embeddings, 3 encoder layers) trained with layer-wise learning rates: `configure_optimizers` builds one AdamW
parameter group per submodule it knows about (patch embedding, each encoder layer with a decaying lr, final norm,
head), iterating `self.patch_embed`, `self.encoder.layers`, `self.norm`, `self.head`. The `cls_token` and
`pos_embed` are bare `nn.Parameter`s on the LightningModule itself, so they are in no group: they keep
`requires_grad=True`, receive gradients every step and never move. The position embedding stays at its 0.02-scale
random init, so the model is nearly permutation-invariant over patches. Symptom: val acc 0.71 vs 0.96 with the two
parameters added to a group."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout17"


class LayerwiseViT(L.LightningModule):
    def __init__(self, d=64, depth=3, heads=4, base_lr=3e-3, decay=0.8):
        super().__init__()
        self.save_hyperparameters()
        self.patch_embed = nn.Linear(4, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, 17, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        patches = pixel_values.view(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(patches)], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(x))[:, 0])

    def step(self, batch, stage):
        logits = self(batch["pixel_values"])
        loss = F.cross_entropy(logits, batch["labels"], label_smoothing=0.05)
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({f"{stage}_loss": loss, f"{stage}_acc": acc})
        return loss

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.step(batch, "val")

    def configure_optimizers(self):
        hp = self.hparams
        depth = len(self.encoder.layers)
        groups = [{"params": self.patch_embed.parameters(), "lr": hp.base_lr * hp.decay ** depth}]
        for i, layer in enumerate(self.encoder.layers):
            groups.append({"params": layer.parameters(), "lr": hp.base_lr * hp.decay ** (depth - 1 - i)})
        groups.append({"params": list(self.norm.parameters()) + list(self.head.parameters()), "lr": hp.base_lr})
        opt = torch.optim.AdamW(groups, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups],
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class DictDataset(TensorDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return {"pixel_values": x, "labels": y}


def main():
    L.seed_everything(2024)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = LayerwiseViT()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="vit_layerwise_lr"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, DataLoader(DictDataset(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(DictDataset(xva, yva), batch_size=256))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
