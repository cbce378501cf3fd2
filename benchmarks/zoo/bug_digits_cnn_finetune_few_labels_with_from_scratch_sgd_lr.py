"""Bug: transfer learning on sklearn digits. A CNN backbone is first pre-trained in this script on the digits 0-4
(all of their images), then fine-tuned end to end on the digits 5-9 with only 12 labelled images per class (new
linear head). The fine-tuning module was cloned from the from-scratch training script and kept its optimizer:
SGD with lr 0.1 and momentum 0.9 (the classic ResNet recipe). Each fine-tuning update moves the pre-trained weights by a large fraction of
their size, the backbone's features are overwritten within a few steps by the 60 labelled images, and the benefit
of pre-training is lost.
Symptom: val acc on 5-9 0.46 vs 0.85 with lr 0.01 for the fine-tuning."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"update-ratio"}
SPLIT = "heldout16"


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def pretrain(backbone, x, y, epochs=8):
    """Supervised pre-training on the source classes (a plain loop; this model is thrown away except its body)."""
    model = nn.Sequential(backbone, nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return backbone


class FineTuner(L.LightningModule):
    def __init__(self, backbone, lr=0.1):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def main():
    L.seed_everything(55)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    src = y < 5
    backbone = pretrain(make_backbone(), x[src], y[src])
    xt, yt = x[~src], y[~src] - 5
    g = torch.Generator().manual_seed(9)
    perm = torch.randperm(len(xt), generator=g)
    few = torch.cat([perm[yt[perm] == c][:12] for c in range(5)])
    rest = perm[~torch.isin(perm, few)]
    train_dl = DataLoader(TensorDataset(xt[few], yt[few]), batch_size=10, shuffle=True)
    val_dl = DataLoader(TensorDataset(xt[rest], yt[rest]), batch_size=300)
    trainer = L.Trainer(max_epochs=15, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(FineTuner(backbone), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
