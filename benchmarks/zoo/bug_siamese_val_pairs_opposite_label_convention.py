"""Bug: a siamese MLP for digit verification trained with the contrastive loss (1 = same digit: pull together; 0:
push beyond margin 1). The validation pairs come from a helper copied from an older face-verification eval script
whose label convention is the opposite (1 = different), so validation scores every pair with the flipped label:
the better the model gets, the worse its validation loss and accuracy.
Measured: val loss 0.781 and val acc 0.050 while the train loss falls, vs 0.064 / 0.950 with one convention
(healthy_siamese_digits_contrastive_pairs)."""

import lightning as L
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout3"
MARGIN = 1.0


def make_pairs(x, y, n, seed):
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(y), (n,), generator=g)
    j = torch.randint(0, len(y), (n,), generator=g)
    want_same = torch.rand(n, generator=g) < 0.5
    for k in torch.nonzero(want_same).flatten().tolist():  # redraw j among the same class
        same = torch.nonzero(y == y[i[k]]).flatten()
        j[k] = same[torch.randint(0, len(same), (1,), generator=g)]
    return TensorDataset(x[i], x[j], (y[i] == y[j]).float())


def verification_pairs(x, y, n, seed):
    """Pairs for the verification report (copied from the face-verification eval script)."""
    a, b, same = make_pairs(x, y, n, seed).tensors
    return TensorDataset(a, b, 1.0 - same)  # BUG: that script's convention is 1 = different, training's is 1 = same


def contrastive_loss(d, same):
    return (same * d.pow(2) + (1 - same) * (MARGIN - d).clamp(min=0).pow(2)).mean()


class Siamese(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.LayerNorm(128), nn.ReLU(), nn.Linear(128, 32))

    def embed(self, x):
        return nn.functional.normalize(self.encoder(x), dim=-1)

    def forward(self, a, b):
        return (self.embed(a) - self.embed(b)).norm(dim=-1)

    def training_step(self, batch, batch_idx):
        a, b, same = batch
        loss = contrastive_loss(self(a, b), same)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        a, b, same = batch
        d = self(a, b)
        self.log_dict({"val_loss": contrastive_loss(d, same), "val_acc": ((d < 0.5).float() == same).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


def main():
    L.seed_everything(77)
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = (torch.tensor(scaler.transform(v), dtype=torch.float32) for v in (x_tr, x_va))
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)
    train = DataLoader(make_pairs(x_tr, y_tr, 4000, 0), batch_size=64, shuffle=True)
    val = DataLoader(verification_pairs(x_va, y_va, 1000, 1), batch_size=500)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Siamese(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
