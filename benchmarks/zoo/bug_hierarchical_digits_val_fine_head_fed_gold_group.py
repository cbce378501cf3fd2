"""Bug: hierarchical classification of noisy scanned digits with a coarse head (5 groups) and a fine head conditioned
on the group, where one shared `_step` serves training and validation and always passes `batch["group"]`, the GOLD
group, to the fine head: teacher forcing meant for training is also applied in validation, so the validation fine
accuracy is measured with the hard half of the answer (which pair of digits) handed to the model. The deployed model
has no gold group. Otherwise the same script as healthy_hierarchical_digits_coarse_then_fine_head (MLP trunk with
LayerNorm/GELU/dropout, one-hot group concatenated to the fine head's input, CE(coarse) + CE(fine), dict batches,
AdamW, cosine per epoch). Symptom: val fine acc 0.887 with the gold group vs 0.842 for the same trained model fed its
predicted group (the healthy twin: training is identical, only validation differs); val coarse acc 0.860."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout8"
N_GROUPS = 5


class Digits(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixels": self.x[i], "label": self.y[i], "group": self.y[i] // 2}


class HierarchicalClassifier(L.LightningModule):
    def __init__(self, hidden=128, max_epochs=15):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.2),
                                   nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.2))
        self.coarse_head = nn.Linear(hidden, N_GROUPS)
        self.fine_head = nn.Sequential(nn.Linear(hidden + N_GROUPS, hidden), nn.GELU(), nn.Linear(hidden, 10))
        self.max_epochs = max_epochs

    def forward(self, pixels, group=None):
        h = self.trunk(pixels)
        coarse = self.coarse_head(h)
        if group is None:
            group = coarse.argmax(-1)
        fine = self.fine_head(torch.cat([h, F.one_hot(group, N_GROUPS).float()], dim=-1))
        return coarse, fine

    def _step(self, batch, stage):
        coarse, fine = self(batch["pixels"], batch["group"])
        loss = F.cross_entropy(coarse, batch["group"]) + F.cross_entropy(fine, batch["label"])
        self.log(f"{stage}_loss", loss)
        if stage == "val":
            self.log("val_coarse_acc", (coarse.argmax(-1) == batch["group"]).float().mean())
            self.log("val_fine_acc", (fine.argmax(-1) == batch["label"]).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)]


def main():
    L.seed_everything(23)
    g = torch.Generator().manual_seed(23)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = x + 5.0 * torch.randn(x.shape, generator=g)
    x = (x - x.mean()) / x.std()
    y = torch.tensor(d.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=2, stratify=y)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HierarchicalClassifier(), DataLoader(Digits(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(Digits(x_va, y_va), batch_size=450))
    m = trainer.callback_metrics
    print(f"val_fine_acc={m['val_fine_acc'].item():.3f} val_coarse_acc={m['val_coarse_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
