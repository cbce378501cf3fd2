"""Bug: a multi-task, two-input digits model. The image (CNN) and a standardised stroke-profile record (MLP) are
fused by concatenation into a shared trunk with two heads: the main 10-way digit classifier and an auxiliary
"is the digit odd?" head meant to shape the representation (loss weight 0.5). The auxiliary head's `forward`
already returns probabilities (`torch.sigmoid`, because the same output is used for a dashboard), and the loss
is `F.binary_cross_entropy_with_logits` on those probabilities, i.e. the sigmoid is applied twice. The auxiliary
loss is squashed into a narrow band (it can never go below ~0.31 and its gradient is tiny near the decision
boundary) so the auxiliary task learns slowly and badly; the main task hides it, total loss still falls.
Measured (10 epochs): aux parity val acc 0.928 and aux val BCE 0.255 with the bug vs 0.964 / 0.102 with the
loss computed correctly (BCE on the probabilities, equivalently BCE-with-logits on the raw logits); the digit val
acc is unaffected (0.969 vs 0.958), which is why nobody looks."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout28"


def profile_features(images):
    return np.concatenate([images.sum(axis=2), images.sum(axis=1)], axis=1)


def collate(records):
    labels = torch.tensor([r[2] for r in records])
    return {
        "image": torch.stack([torch.tensor(r[0], dtype=torch.float32) for r in records]).unsqueeze(1),
        "tab": torch.stack([torch.tensor(r[1], dtype=torch.float32) for r in records]),
        "labels": labels,
        "odd": (labels % 2).float(),
    }


class MultiTaskDigits(L.LightningModule):
    def __init__(self, lr=2e-3, aux_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.image_enc = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 64), nn.ReLU())
        self.tab_enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.trunk = nn.Sequential(nn.Linear(96, 64), nn.ReLU())
        self.digit_head = nn.Linear(64, 10)
        self.odd_head = nn.Linear(64, 1)

    def forward(self, batch):
        h = self.trunk(torch.cat([self.image_enc(batch["image"]), self.tab_enc(batch["tab"])], dim=1))
        return {"digit_logits": self.digit_head(h), "odd_prob": torch.sigmoid(self.odd_head(h)).squeeze(1)}

    def _losses(self, batch):
        out = self(batch)
        digit_loss = F.cross_entropy(out["digit_logits"], batch["labels"])
        odd_loss = F.binary_cross_entropy_with_logits(out["odd_prob"], batch["odd"])
        return out, digit_loss, odd_loss

    def training_step(self, batch, batch_idx):
        _, digit_loss, odd_loss = self._losses(batch)
        loss = digit_loss + self.hparams.aux_weight * odd_loss
        self.log_dict({"train_loss": loss, "train_digit_loss": digit_loss, "train_odd_loss": odd_loss}, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        out, digit_loss, odd_loss = self._losses(batch)
        self.log("val_loss", digit_loss + self.hparams.aux_weight * odd_loss)
        self.log("val_digit_acc", (out["digit_logits"].argmax(1) == batch["labels"]).float().mean())
        self.log("val_odd_acc", ((out["odd_prob"] > 0.5).float() == batch["odd"]).float().mean())
        self.log("val_odd_bce", F.binary_cross_entropy(out["odd_prob"], batch["odd"]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(282)
    digits = load_digits()
    images, y = digits.images, digits.target
    idx_tr, idx_va = train_test_split(np.arange(len(y)), test_size=0.2, random_state=2, stratify=y)
    scaler = StandardScaler().fit(profile_features(images[idx_tr]))
    tab = scaler.transform(profile_features(images))
    records = [(images[i] / 16.0, tab[i], int(y[i])) for i in range(len(y))]
    train_dl = DataLoader([records[i] for i in idx_tr], batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader([records[i] for i in idx_va], batch_size=128, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiTaskDigits(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_digit_acc={m['val_digit_acc'].item():.3f} val_odd_acc={m['val_odd_acc'].item():.3f} "
          f"val_odd_bce={m['val_odd_bce'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
