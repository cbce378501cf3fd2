"""Bug: the "pretrained" backbone's state_dict is loaded with `strict=False` into a module whose keys carry a
prefix the checkpoint lacks, so nothing is loaded (the returned missing keys are never looked at); the backbone is
then frozen with its BatchNorm layers held in eval mode "to keep the pretrained statistics", which are in fact the
initial 0/1. Only the head trains, on random features. Digits 5-9, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout"


def make_backbone():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU())


def pretrain(x, y, seed=0):
    """The "pretrained checkpoint": a backbone trained on digits 0-4 with a plain torch loop."""
    torch.manual_seed(seed)
    model = nn.Sequential(make_backbone(), nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(2):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return {k[2:]: v for k, v in model.state_dict().items() if k.startswith("0.")}  # backbone weights only


class FineTuner(L.LightningModule):
    def __init__(self, backbone_state):
        super().__init__()
        self.backbone = make_backbone()
        wrapped = nn.ModuleDict({"features": self.backbone})
        wrapped.load_state_dict(backbone_state, strict=False)  # BUG: keys lack "features." -> nothing is loaded
        self.head = nn.Linear(64, 5)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # keep the "pretrained" BatchNorm statistics
        return self

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
        return torch.optim.Adam(self.head.parameters(), lr=3e-3)


def main():
    L.seed_everything(1712)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    old, new = y < 5, y >= 5
    state = pretrain(x[old], y[old])
    xn, yn = x[new], y[new] - 5  # the new task: digits 5-9
    perm = torch.randperm(len(yn), generator=torch.Generator().manual_seed(1))
    tr, va = perm[:600], perm[600:]
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FineTuner(state), DataLoader(TensorDataset(xn[tr], yn[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xn[va], yn[va]), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
