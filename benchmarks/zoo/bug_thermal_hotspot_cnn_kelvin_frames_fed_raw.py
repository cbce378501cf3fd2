"""Bug: a small CNN (no normalisation layers) classifies the shape of a hot spot in seeded synthetic 16x16 thermal
frames - none / round / horizontal streak / vertical streak - as exported by the camera in Kelvin: ambient
293-300 K with a sensor gradient and noise, hot spots 2-6 K above ambient. The user feeds the frames as they are
(`torch.tensor(frames)`), since "the values are already floats"; the per-frame offset of ~300 dwarfs the few-kelvin
signal, the first conv layer's outputs are in the hundreds, and SGD with momentum at a normal lr makes little
progress: it stays at chance. Symptom: val acc 0.22 / val loss 1.39 (chance, ln 4 = 1.386) vs 0.73 / 0.61 when the
frames are standardised with the training set's mean and std."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout18"
S = 16


def thermal_frames(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    y = torch.randint(0, 4, (n,), generator=g)
    ambient = 293 + 7 * torch.rand(n, 1, 1, generator=g)
    gradient = torch.rand(n, 1, 1, generator=g) * xx / S
    cx, cy = (4 + 8 * torch.rand(2, n, 1, 1, generator=g))
    sx = torch.where(y == 2, 4.0, torch.where(y == 3, 0.9, 1.8))[:, None, None]
    sy = torch.where(y == 3, 4.0, torch.where(y == 2, 0.9, 1.8))[:, None, None]
    heat = (2 + 4 * torch.rand(n, 1, 1, generator=g)) * (y > 0).float()[:, None, None]
    spot = heat * torch.exp(-((xx - cx) / sx) ** 2 - ((yy - cy) / sy) ** 2)
    frames = ambient + gradient + spot + 0.6 * torch.randn(n, S, S, generator=g)
    return frames.unsqueeze(1), y


class HotspotCNN(L.LightningModule):
    def __init__(self, lr=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


def main():
    L.seed_everything(293)
    g = torch.Generator().manual_seed(293)
    frames, y = thermal_frames(2400, g)
    x_train, x_val = frames[:2000], frames[2000:]
    train, val = TensorDataset(x_train, y[:2000]), TensorDataset(x_val, y[2000:])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(HotspotCNN(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=400))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
