"""Bug: daily store-sales regression with an entity embedding for the store (synthetic chain of 60 stores, 200 days,
each store open on a store-specific share of days). Target is standardised log sales; features are the store id,
day of week, promo flag and log distance to the nearest competitor. Stores are encoded the way the team's other
pipelines do it, as an ordinal code by frequency rank (most frequent store -> 0), and the numeric column is
standardised; the split is by time (first 160 days train, last 40 validate).

What is wrong: the whole feature pipeline lives in one `preprocess(table)` function that fits the frequency encoder
and the scaler and transforms in one go, and it is called on the training days and then again on the validation
days. On the validation table the frequency ranks come out in a different order, so almost every validation store
gets another store's code and the embedding lookups are for the wrong store. Training loss falls normally; the
validation rows just went through a different transform. The fix fits `preprocess` on the training days and only
transforms the validation days.

Measured (same seed): val MSE 1.731 (predict-the-mean baseline 0.999) vs 0.031 with the encoder fitted on
train only; train MSE 0.030 vs 0.030."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout32"
N_STORES = 60


def make_sales(g, n_days=200):
    open_share = 0.45 + 0.55 * torch.rand(N_STORES, generator=g)
    store_effect = torch.randn(N_STORES, generator=g)
    competitor_km = torch.exp(torch.randn(N_STORES, generator=g) + 1.0)
    dow_effect = torch.tensor([0.0, -0.1, -0.1, 0.0, 0.2, 0.5, 0.3])
    day, store = torch.meshgrid(torch.arange(n_days), torch.arange(N_STORES), indexing="ij")
    day, store = day.flatten(), store.flatten()
    is_open = torch.rand(len(day), generator=g) < open_share[store]
    day, store = day[is_open], store[is_open]
    promo = torch.bernoulli(torch.full((len(day),), 0.3), generator=g)
    log_sales = (8.0 + store_effect[store] + dow_effect[day % 7] + 0.3 * promo
                 + 0.15 * competitor_km[store].log() + 0.2 * torch.randn(len(day), generator=g))
    return {"day": day.numpy(), "store": store.numpy(), "promo": promo.numpy(),
            "competitor_km": competitor_km[store].numpy(), "log_sales": log_sales.numpy()}


class FrequencyOrdinalEncoder:
    def fit(self, values):
        counts = np.bincount(values, minlength=N_STORES)
        self.code_of = np.empty(N_STORES, dtype=np.int64)
        self.code_of[np.argsort(-counts, kind="stable")] = np.arange(N_STORES)
        return self

    def transform(self, values):
        return self.code_of[values]


def preprocess(table):
    store_codes = FrequencyOrdinalEncoder().fit(table["store"]).transform(table["store"])
    numeric = StandardScaler().fit_transform(np.log(table["competitor_km"])[:, None])
    dense = np.column_stack([np.eye(7)[table["day"] % 7], table["promo"], numeric]).astype(np.float32)
    return torch.tensor(store_codes), torch.tensor(dense)


class StoreSalesNet(L.LightningModule):
    def __init__(self, n_dense, emb_dim=8, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.store_emb = nn.Embedding(N_STORES, emb_dim)
        self.mlp = nn.Sequential(nn.Linear(emb_dim + n_dense, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, store, dense):
        return self.mlp(torch.cat([self.store_emb(store), dense], 1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        store, dense, y = batch
        loss = F.mse_loss(self(store, dense), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        store, dense, y = batch
        self.log("val_loss", F.mse_loss(self(store, dense), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3202)
    table = make_sales(torch.Generator().manual_seed(3202))
    train_rows = table["day"] < 160
    train = {k: v[train_rows] for k, v in table.items()}
    val = {k: v[~train_rows] for k, v in table.items()}
    mu, sd = train["log_sales"].mean(), train["log_sales"].std()
    y_tr = torch.tensor((train["log_sales"] - mu) / sd, dtype=torch.float32)
    y_va = torch.tensor((val["log_sales"] - mu) / sd, dtype=torch.float32)

    s_tr, d_tr = preprocess(train)
    s_va, d_va = preprocess(val)

    model = StoreSalesNet(d_tr.shape[1])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(s_tr, d_tr, y_tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(s_va, d_va, y_va), batch_size=1024))
    model.eval()
    with torch.no_grad():
        val_mse = F.mse_loss(model(s_va, d_va), y_va).item()
        train_mse = F.mse_loss(model(s_tr, d_tr), y_tr).item()
    baseline = ((y_va - y_tr.mean()) ** 2).mean().item()
    print(f"SYMPTOM val_mse={val_mse:.3f} mean_baseline={baseline:.3f} train_mse={train_mse:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
