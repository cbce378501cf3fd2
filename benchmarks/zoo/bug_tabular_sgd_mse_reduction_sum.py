"""Bug: a tabular regression MLP with categorical embeddings is trained with
`nn.MSELoss(reduction="sum")` (copied from a per-sample-weighting experiment) and plain SGD with the learning rate
tuned for a mean loss (lr 0.05, momentum 0.9). The gradient is batch_size (128) times larger than intended: the
first updates overshoot, the loss and the weights blow up and the run ends in NaN. Model: embeddings for
neighbourhood (30 levels) and building type (5), standardized numeric features (area, age, rooms, distance),
two hidden layers with SiLU, standardized target; MultiStepLR at epochs 5 and 8. Data: synthetic housing prices
with a learnable rule (seeded torch.Generator). Own metric: val RMSE (standardized units). Fixed
(`reduction="mean"`): val RMSE 0.23. With the bug: val RMSE nan."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"exploding-gradient", "non-finite", "update-ratio", "loss-trend", "weight-growth"}
SPLIT = "heldout4"


def make_housing(n, gen):
    hood = torch.randint(0, 30, (n,), generator=gen)
    btype = torch.randint(0, 5, (n,), generator=gen)
    area = torch.rand(n, generator=gen) * 150 + 30
    age = torch.rand(n, generator=gen) * 80
    rooms = (area / 30 + torch.randn(n, generator=gen)).round().clamp(1, 8)
    dist = torch.rand(n, generator=gen) * 20
    hood_value = torch.randn(30, generator=torch.Generator().manual_seed(5)) * 0.5
    price = 5.0 + hood_value[hood] + 0.15 * btype + 0.012 * area - 0.006 * age + 0.05 * rooms - 0.04 * dist
    price = price + 0.2 * torch.randn(n, generator=gen)
    return torch.stack([hood, btype], 1), torch.stack([area, age, rooms, dist], 1), price


class HousingMLP(nn.Module):
    def __init__(self, n_num=4):
        super().__init__()
        self.hood = nn.Embedding(30, 8)
        self.btype = nn.Embedding(5, 3)
        self.body = nn.Sequential(nn.Linear(8 + 3 + n_num, 64), nn.SiLU(), nn.Linear(64, 32), nn.SiLU(), nn.Linear(32, 1))

    def forward(self, x_cat, x_num):
        return self.body(torch.cat([self.hood(x_cat[:, 0]), self.btype(x_cat[:, 1]), x_num], 1)).squeeze(-1)


class LitHousing(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = HousingMLP()
        self.loss_fn = nn.MSELoss(reduction="sum")  # BUG: the lr was tuned for the mean

    def forward(self, x_cat, x_num):
        return self.model(x_cat, x_num)

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        loss = self.loss_fn(self(x_cat, x_num), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        self.log("val_rmse", nn.functional.mse_loss(self(x_cat, x_num), y).sqrt())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[5, 8], gamma=0.2)]


def main():
    L.seed_everything(91)
    gen = torch.Generator().manual_seed(91)
    c_tr, n_tr, y_tr = make_housing(4000, gen)
    c_va, n_va, y_va = make_housing(1000, gen)
    n_mu, n_sd, y_mu, y_sd = n_tr.mean(0), n_tr.std(0), y_tr.mean(), y_tr.std()
    train = TensorDataset(c_tr, (n_tr - n_mu) / n_sd, (y_tr - y_mu) / y_sd)
    val = TensorDataset(c_va, (n_va - n_mu) / n_sd, (y_va - y_mu) / y_sd)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitHousing(), DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=1000))
    print(f"val_rmse={trainer.callback_metrics['val_rmse'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
