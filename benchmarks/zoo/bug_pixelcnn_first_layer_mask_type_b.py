"""Bug (causal leakage): a PixelCNN density model of binarized 8x8 digits whose first masked convolution is built
with mask type "B" instead of "A" (`MaskedConv2d("B", 1, 2 * ch, 5, ...)`, every layer copied from the residual
blocks'). Type B lets a position read its own input pixel, which in the first layer is the very pixel the output
predicts: the autoregressive factorisation is broken and the model copies its target. Symptom: validation NLL
0.000 nats/pixel, impossibly far below the 0.31 of the same model with the type-A stem (an independent per-pixel
Bernoulli model: 0.38); sampling pixel by pixel from it gives noise, since at generation time the pixel is unknown.

The rest is a standard PixelCNN: residual 3x3 type-B blocks, 1x1 convolutions to one Bernoulli logit per pixel,
binary cross-entropy with logits with the image as both input and target, 1-tuple batches from
`TensorDataset(x)`, Adam with per-epoch exponential decay."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout6"


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super().__init__(*args, **kwargs)
        k = self.kernel_size[0]
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (mask_type == "B"):] = 0
        mask[:, :, k // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class ResidualBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * ch, ch, 1), nn.ReLU(),
                                 MaskedConv2d("B", ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 2 * ch, 1))

    def forward(self, x):
        return x + self.net(x)


class PixelCNN(L.LightningModule):
    def __init__(self, ch=32, n_blocks=4, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.stem = MaskedConv2d("B", 1, 2 * ch, 5, padding=2)
        self.blocks = nn.Sequential(*[ResidualBlock(ch) for _ in range(n_blocks)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * ch, ch, 1), nn.ReLU(), nn.Conv2d(ch, 1, 1))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.binary_cross_entropy_with_logits(self(x), x)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_nll", F.binary_cross_entropy_with_logits(self(x), x))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)]


def main():
    L.seed_everything(61)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0 > 0.5, dtype=torch.float32).unsqueeze(1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(61))
    tr, va = perm[:1500], perm[1500:]
    p = x[tr].mean(0).clamp(1e-3, 1 - 1e-3)
    independent = F.binary_cross_entropy(p.expand_as(x[va]), x[va]).item()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PixelCNN(), DataLoader(TensorDataset(x[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va]), batch_size=297))
    print(f"val_nll={trainer.callback_metrics['val_nll'].item():.3f} nats/pixel "
          f"independent_bernoulli={independent:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
