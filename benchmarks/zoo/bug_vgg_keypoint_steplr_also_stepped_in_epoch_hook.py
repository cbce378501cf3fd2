"""Bug (scheduler stepped twice): a VGG-style CNN (conv-BN-ReLU pairs, max-pooling) regresses the centre of a
bright disc in synthetic 16x16 images (a one-keypoint detector), SGD with momentum and `StepLR(step_size=6,
gamma=0.1)` meant per epoch over 18 epochs. The scheduler is returned from `configure_optimizers`, so Lightning
steps it at every epoch end, and the author also calls `self.lr_schedulers().step()` in `on_train_epoch_end`
(copied from a manual-optimization example). The decay comes every 3 epochs: the rate is 1 % of its peak after 6
epochs and 1e-6 of it at the end. Symptom: val centre error 0.39 px vs 0.31 px without the extra step."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout7"

SIZE = 16


def make_discs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centre = 3 + torch.rand(n, 2, generator=g) * (SIZE - 7)
    radius = 1.5 + torch.rand(n, generator=g) * 1.5
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    d2 = (xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2
    imgs = (d2 <= radius[:, None, None] ** 2).float() + 0.15 * torch.randn(n, SIZE, SIZE, generator=g)
    return imgs.unsqueeze(1), centre / (SIZE - 1) * 2 - 1


def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class KeypointVGG(L.LightningModule):
    def __init__(self, lr=0.02):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(*conv_bn(1, 16), *conv_bn(16, 16), nn.MaxPool2d(2),
                                      *conv_bn(16, 32), *conv_bn(32, 32), nn.MaxPool2d(2))
        self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(inplace=True),
                                       nn.Linear(64, 2))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.regressor(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def on_train_epoch_end(self):
        self.lr_schedulers().step()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.mse_loss(pred, y))
        self.log("val_px_err", ((pred - y).abs() * (SIZE - 1) / 2).mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=5e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.1)]


def main():
    L.seed_everything(41)
    x_tr, y_tr = make_discs(1024, seed=1)
    x_va, y_va = make_discs(256, seed=2)
    trainer = L.Trainer(max_epochs=18, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=8,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeypointVGG(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"val_px_err={trainer.callback_metrics['val_px_err'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
