"""Bug: daily store-sales regression with categorical embeddings (store, product family, weekday, calendar day) plus
numeric columns (promotion share, temperature, fuel price) into an MLP with dropout. The user holds out 20 % of the
2022 table for validation, then "uses all the data there is" by appending the 2023 data release to the training rows.
The 2023 release is cumulative - it republishes every 2022 row next to the new ones - so every validation row is also
in the training set. The network memorises the noise of those rows and validation looks better than any honest
model can be. Symptom: val MSE 0.15 (far below the 0.36 noise floor of the simulator) vs 0.55 when the 2023 release is
de-duplicated against the validation rows (train MSE 0.16 vs 0.14)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout18"
N_STORE, N_FAMILY, N_DAY = 40, 12, 365
NOISE = 0.6


def make_sales(n, g, store_fx, family_fx, day_fx):
    store = torch.randint(N_STORE, (n,), generator=g)
    family = torch.randint(N_FAMILY, (n,), generator=g)
    day = torch.randint(N_DAY, (n,), generator=g)
    weekday = day % 7
    promo = torch.rand(n, generator=g)
    temp = 15 + 10 * torch.sin(2 * torch.pi * day / 365) + 3 * torch.randn(n, generator=g)
    fuel = 3 + 0.3 * torch.randn(n, generator=g)
    y = (store_fx[store] + family_fx[family] + day_fx[day] + 0.3 * (weekday >= 5).float()
         + promo * family_fx[family].abs() + 0.02 * (temp - 15) + NOISE * torch.randn(n, generator=g))
    cats = torch.stack([store, family, weekday, day], 1)
    nums = torch.stack([promo, temp, fuel], 1)
    return cats, nums, y


class SalesMLP(L.LightningModule):
    def __init__(self, num_mean, num_std, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embs = nn.ModuleList([nn.Embedding(N_STORE, 8), nn.Embedding(N_FAMILY, 6), nn.Embedding(7, 3),
                                   nn.Embedding(N_DAY, 16)])
        self.register_buffer("num_mean", num_mean)
        self.register_buffer("num_std", num_std)
        self.mlp = nn.Sequential(nn.Linear(8 + 6 + 3 + 16 + 3, 256), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))

    def forward(self, cats, nums):
        e = [emb(cats[:, i]) for i, emb in enumerate(self.embs)]
        return self.mlp(torch.cat(e + [(nums - self.num_mean) / self.num_std], 1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch[0], batch[1]), batch[2])
        self.log("train_mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_mse", F.mse_loss(self(batch[0], batch[1]), batch[2]), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(2022)
    g = torch.Generator().manual_seed(2022)
    store_fx, family_fx = torch.randn(N_STORE, generator=g), torch.randn(N_FAMILY, generator=g)
    day_fx = 0.5 * torch.randn(N_DAY, generator=g)
    sales_2022 = make_sales(4000, g, store_fx, family_fx, day_fx)
    perm = torch.randperm(4000, generator=g)
    tr_idx, va_idx = perm[:3200], perm[3200:]
    new_2023 = make_sales(2000, g, store_fx, family_fx, day_fx)
    release_2023 = [torch.cat([a, b]) for a, b in zip(sales_2022, new_2023)]  # cumulative release
    train = [torch.cat([a[tr_idx], b]) for a, b in zip(sales_2022, release_2023)]
    val = [a[va_idx] for a in sales_2022]
    model = SalesMLP(train[1].mean(0), train[1].std(0))
    trainer = L.Trainer(
        max_epochs=15,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="store_sales"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=512))
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_mse']):.3f} "
          f"train_mse={float(trainer.callback_metrics['train_mse']):.3f} noise_floor={NOISE ** 2:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
