"""Bug: two-view fusion classifier in the style of CC/MLO mammography, on the sklearn digits: the "cc" view is the
top half of the 8x8 digit and the "mlo" view the bottom half; each view has its own encoder and the embeddings are
concatenated for a 10-way head. Views come from an export helper as a dict keyed by view name, in the order the
reading list names them, and the dataset stacks `list(views.values())`. The training export lists CC first, the
validation export (another reading list) lists MLO first, so at validation the CC encoder gets bottom halves and the
MLO encoder top halves. Shapes match, nothing crashes, the training loss falls normally, but validation is scored
on swapped views and the confident wrong predictions send val loss up. Measured: val CE 7.99 and accuracy 0.13 while
train CE falls to 0.009, against val CE 0.10 / accuracy 0.975 when the dataset stacks the views by name (the fix)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout35"


def exported_views(images, reading_list):
    halves = {"cc": images[:, :4], "mlo": images[:, 4:]}
    return {name: halves[name] for name in reading_list}


class TwoViewDataset(Dataset):
    def __init__(self, views, labels):
        self.views = torch.stack(list(views.values()), 1)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"views": self.views[i], "labels": self.labels[i]}


def view_encoder(dim):
    return nn.Sequential(nn.Flatten(), nn.Linear(32, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())


class TwoViewFusion(L.LightningModule):
    def __init__(self, dim=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.cc_encoder, self.mlo_encoder = view_encoder(dim), view_encoder(dim)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(2 * dim, 10))

    def forward(self, views):
        return self.head(torch.cat([self.cc_encoder(views[:, 0]), self.mlo_encoder(views[:, 1])], 1))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["views"]), batch["labels"])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["views"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)}


def main():
    L.seed_everything(3509)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 8.0 - 1.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(3509))
    tr, va = order[:1400], order[1400:]
    train_ds = TwoViewDataset(exported_views(images[tr], ["cc", "mlo"]), labels[tr])
    val_ds = TwoViewDataset(exported_views(images[va], ["mlo", "cc"]), labels[va])
    model = TwoViewFusion()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=400))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
