"""Healthy: MADE, an autoregressive density model over pixels, on the 8x8 scikit-learn digits binarised at 8/16. The 64
pixels are modelled in raster order: p(x) = prod_d p(x_d | x_<d), each conditional a Bernoulli whose logit comes
from a two-hidden-layer masked MLP.

Masks follow the paper: inputs get degrees 1..64, hidden units get degrees drawn once (seeded) from 1..63, a
connection hidden<-input or hidden<-hidden exists when the receiving degree is >= the sending one, and the output
for pixel d connects only to hidden units of degree < d (strict), so output d never depends on x_d or later pixels
(pixel 1 has no inputs at all and learns its marginal through the bias). The output bias is initialised to the logit
of each pixel's training-set mean, so the initial loss is the entropy of the factorised pixel prior (25.1 nats per
image measured, not 64 ln 2 = 44.4) and no step is wasted learning the marginals. The loss is the summed BCE-with-
logits per image (nats), Adam with ReduceLROnPlateau on the validation NLL. Measured: val NLL 25.2 -> 17.6 nats per
image after 20 epochs, decreasing every epoch; the Jacobian of outputs w.r.t. inputs was checked to be strictly
lower-triangular."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"
D = 64


class MaskedLinear(nn.Linear):
    def __init__(self, d_in, d_out, mask):
        super().__init__(d_in, d_out)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(L.LightningModule):
    def __init__(self, pixel_means, hidden=256, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["pixel_means"])
        g = torch.Generator().manual_seed(0)
        deg_in = torch.arange(1, D + 1)
        deg_h1 = torch.randint(1, D, (hidden,), generator=g)
        deg_h2 = torch.randint(1, D, (hidden,), generator=g)
        self.l1 = MaskedLinear(D, hidden, (deg_h1[:, None] >= deg_in[None, :]).float())
        self.l2 = MaskedLinear(hidden, hidden, (deg_h2[:, None] >= deg_h1[None, :]).float())
        self.out = MaskedLinear(hidden, D, (deg_in[:, None] > deg_h2[None, :]).float())
        with torch.no_grad():
            p = pixel_means.clamp(1e-3, 1 - 1e-3)
            self.out.bias.copy_(torch.log(p / (1 - p)))

    def forward(self, x):
        return self.out(F.relu(self.l2(F.relu(self.l1(x)))))

    def nll(self, x):
        return F.binary_cross_entropy_with_logits(self(x), x, reduction="none").sum(1).mean()

    def training_step(self, batch, batch_idx):
        loss = self.nll(batch[0])
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_nll"}}


def main():
    L.seed_everything(2210)
    x = (torch.tensor(load_digits().data, dtype=torch.float32) >= 8).float()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(11))
    train, val = x[perm[:1500]], x[perm[1500:]]
    model = MADE(train.mean(0))
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=50, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=297))
    print(f"SYMPTOM val_nll={float(trainer.callback_metrics['val_nll']):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
