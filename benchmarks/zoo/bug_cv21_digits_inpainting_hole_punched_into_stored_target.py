"""Bug: a small conv network inpaints the 8x8 scikit-learn digits: a Dataset punches a random 3x3 hole into each
image, the network sees the holed image plus the hole mask as a second channel and is trained with MSE on the hole
pixels only (Adam, cosine decay). Validation uses the same Dataset class with a fixed hole per image.

`__getitem__` writes `holed = self.images[i]` and then `holed[:, r:r + 3, c:c + 3] = 0.0`, the numpy-copy habit:
indexing a torch tensor returns a view, so the hole is punched into the stored image itself and the returned target
`self.images[i]` is the holed image too. The target inside the hole is therefore exactly the input there (zero), and
the network only has to output zero where the mask is one. The loss drops almost to zero at once, and since the
stored images collect more holes every epoch nothing looks odd in the curve. Symptom: val hole-MSE 0.0000 but
0.291 when the trained net fills holes punched into untouched copies of the val images; with `.clone()` the val
hole-MSE and the untouched-copy MSE are both 0.068."""

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout21"


class HoleDataset(Dataset):
    def __init__(self, images, fixed_seed=None):
        self.images = images
        self.fixed_seed = fixed_seed

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.fixed_seed + i) if self.fixed_seed is not None else None
        r, c = torch.randint(0, 6, (2,), generator=g).tolist()
        mask = torch.zeros(1, 8, 8)
        mask[:, r:r + 3, c:c + 3] = 1.0
        holed = self.images[i]
        holed[:, r:r + 3, c:c + 3] = 0.0
        return torch.cat([holed, mask]), mask, self.images[i]


class Inpainter(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(2, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(64, 1, 3, padding=1))

    def forward(self, x):
        return self.net(x)

    def _hole_mse(self, batch):
        x, mask, target = batch
        return ((self(x) - target) ** 2 * mask).sum() / mask.sum()

    def training_step(self, batch, batch_idx):
        loss = self._hole_mse(batch)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._hole_mse(batch))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2102)
    images = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train_imgs, val_imgs = images[perm[:1500]], images[perm[1500:]]
    pristine_val = val_imgs.clone()
    model = Inpainter()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(HoleDataset(train_imgs), batch_size=64, shuffle=True),
                DataLoader(HoleDataset(val_imgs, fixed_seed=10_000), batch_size=300))
    model.eval()
    with torch.no_grad():
        x, mask, _ = zip(*(HoleDataset(pristine_val.clone(), fixed_seed=10_000)[i] for i in range(len(val_imgs))))
        x, mask = torch.stack(x), torch.stack(mask)
        true_mse = float(((model(x) - pristine_val) ** 2 * mask).sum() / mask.sum())
    print(f"SYMPTOM val_hole_mse={float(trainer.callback_metrics['val_loss']):.4f} "
          f"hole_mse_on_untouched_copies={true_mse:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
