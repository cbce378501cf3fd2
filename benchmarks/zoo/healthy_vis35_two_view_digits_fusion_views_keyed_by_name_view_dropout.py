"""Healthy: two-view fusion classifier in the style of CC/MLO mammography, on the sklearn digits: the "cc" view is
the top half of the 8x8 digit and the "mlo" view the bottom half; each view has its own encoder and the embeddings
are concatenated for a 10-way head. The views arrive from an export helper as dicts whose order differs between the
training and the validation reading lists (CC first vs MLO first), the classic way to feed swapped views to a fusion
model; here the dataset stacks them by name in one fixed `VIEW_ORDER`, so both splits agree. For robustness to a
missing view, training replaces one view's embedding by a learned "missing" vector with probability 0.15 per
sample; that is gated on `self.training`, so validation always uses both views. Val CE 0.08 and accuracy 0.975."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
VIEW_ORDER = ("cc", "mlo")
SPLIT = "heldout35"


def exported_views(images, reading_list):
    halves = {"cc": images[:, :4], "mlo": images[:, 4:]}
    return {name: halves[name] for name in reading_list}


class TwoViewDataset(Dataset):
    def __init__(self, views, labels):
        self.views = torch.stack([views[name] for name in VIEW_ORDER], 1)
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"views": self.views[i], "labels": self.labels[i]}


def view_encoder(dim):
    return nn.Sequential(nn.Flatten(), nn.Linear(32, dim), nn.LayerNorm(dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())


class TwoViewFusion(L.LightningModule):
    def __init__(self, dim=64, lr=2e-3, view_drop=0.15):
        super().__init__()
        self.save_hyperparameters()
        self.cc_encoder, self.mlo_encoder = view_encoder(dim), view_encoder(dim)
        self.missing = nn.Parameter(torch.zeros(dim))
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(2 * dim, 10))

    def forward(self, views):
        embeddings = torch.stack([self.cc_encoder(views[:, 0]), self.mlo_encoder(views[:, 1])], 1)
        if self.training:
            dropped = torch.rand(len(views), device=views.device) < self.hparams.view_drop
            which = torch.randint(0, 2, (len(views),), device=views.device)
            hit = dropped[:, None] & (torch.arange(2, device=views.device) == which[:, None])
            embeddings = torch.where(hit[..., None], self.missing.expand_as(embeddings), embeddings)
        return self.head(embeddings.flatten(1))

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
    L.seed_everything(3510)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 8.0 - 1.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(3510))
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
