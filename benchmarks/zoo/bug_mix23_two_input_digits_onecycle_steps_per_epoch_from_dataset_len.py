"""Bug: a multi-input digits classifier. Each sample is a dict with the 8x8 image (sklearn `load_digits`, scaled to [0,
1]) and a 16-d vector of stroke profiles (row and column ink sums, standardized with train statistics); a small CNN
branch and an MLP branch are concatenated into a linear head. SGD with Nesterov momentum under OneCycleLR (max_lr
0.1, 30 % warm-up), stepped every batch.

OneCycleLR is configured with `steps_per_epoch=len(self.trainer.datamodule.train_set)`, the number of SAMPLES
(1437), not batches (23 per epoch at batch size 64). The schedule is therefore planned over 60x more steps than
training runs: the warm-up, which should end after ~3 epochs, has only reached ~3 % of its length when training
stops, so the learning rate stays near the initial max_lr / 25 = 0.004 throughout and never anneals. The network
still learns (loss goes down, accuracy is decent), just slowly. The intended value is
`self.trainer.estimated_stepping_batches`. Symptom: final lr 0.0047 and val acc 0.881 / val loss 0.399 vs lr ~0 at
the end and val acc 0.967 / val loss 0.102 with the correct total steps."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout23"


class TwoViewDigits(Dataset):
    def __init__(self, images, profiles, labels):
        self.images, self.profiles, self.labels = images, profiles, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "profile": self.profiles[i], "label": self.labels[i]}


class DigitsTwoView(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        digits = load_digits()
        images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        profiles = torch.cat([images.sum(dim=3).flatten(1), images.sum(dim=2).flatten(1)], 1)
        labels = torch.tensor(digits.target)
        tr, va = train_test_split(torch.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels)
        mean, std = profiles[tr].mean(0), profiles[tr].std(0) + 1e-6
        profiles = (profiles - mean) / std
        self.train_set = TwoViewDigits(images[tr], profiles[tr], labels[tr])
        self.val_set = TwoViewDigits(images[va], profiles[va], labels[va])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=360)


class TwoViewNet(L.LightningModule):
    def __init__(self, max_lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                 nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU())
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.head = nn.Linear(64 + 32, 10)

    def forward(self, image, profile):
        return self.head(torch.cat([self.cnn(image), self.mlp(profile)], 1))

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["image"], batch["profile"]), batch["label"])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["image"], batch["profile"])
        self.log("val_loss", F.cross_entropy(logits, batch["label"]))
        self.log("val_acc", (logits.argmax(1) == batch["label"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.max_lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr, epochs=self.trainer.max_epochs,
                                                    steps_per_epoch=len(self.trainer.datamodule.train_set))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2304)
    dm = DigitsTwoView()
    model = TwoViewNet()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    final_lr = trainer.optimizers[0].param_groups[0]["lr"]
    print(f"SYMPTOM final_lr={final_lr:.4f} val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
