"""Bug: MADE density model (autoregressive over the 64 pixels in raster order) on binarised 8x8 digits. The masks
come from unit degrees as in Germain et al.: input pixel i has degree i, hidden units draw degrees in [1, D-1], a
hidden unit may see input i when its degree is >= i, and output d may see hidden unit k only when d is strictly
greater than k's degree. Here the output mask is built with `>=` (the same comparison as the hidden masks), so output
d is wired to hidden units of degree d, which read pixel d itself: the conditional p(x_d | x_<d) can look at x_d.
Nothing crashes and the NLL falls fast, much faster than a real density model can; the numbers are not a likelihood.
Symptom: validation NLL 7.4 nats/image (train 7.4) against 19.0 with the strict `>` mask (the healthy twin's mask)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout34"
D = 64


class MaskedLinear(nn.Linear):
    def __init__(self, n_in, n_out, mask):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(L.LightningModule):
    def __init__(self, hidden=256, lr=2e-3, seed=34):
        super().__init__()
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(seed)
        deg_in = torch.arange(1, D + 1)
        deg_h1 = torch.randint(1, D, (hidden,), generator=g)
        deg_h2 = torch.randint(1, D, (hidden,), generator=g)
        self.net = nn.Sequential(
            MaskedLinear(D, hidden, deg_h1[:, None] >= deg_in[None, :]), nn.ReLU(),
            MaskedLinear(hidden, hidden, deg_h2[:, None] >= deg_h1[None, :]), nn.ReLU(),
            MaskedLinear(hidden, D, deg_in[:, None] >= deg_h2[None, :]),
        )

    def forward(self, x):
        return self.net(x)

    def nll(self, x):
        return F.binary_cross_entropy_with_logits(self(x), x, reduction="none").sum(1).mean()

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.nll(x)
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_nll", self.nll(x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(34)
    x = torch.tensor(load_digits().data > 7, dtype=torch.float32)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(34))
    train, val = x[perm[:1500]], x[perm[1500:]]
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MADE(), DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_nll={m['train_nll'].item():.2f} val_nll={m['val_nll'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
