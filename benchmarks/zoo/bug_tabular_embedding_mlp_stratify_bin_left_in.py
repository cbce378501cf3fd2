"""Bug: to get a stratified split on a continuous target, the feature-engineering step adds
`df["y_bin"] = pd.qcut(y, 10)` codes and uses it for `train_test_split(stratify=...)`, then the categorical column
list is built as "every integer-coded column", so the decile of the target goes into the model as one more
categorical embedding. Model: a tabular MLP with one `nn.Embedding` per categorical column (store, weekday, promo,
plus the leaked bin) concatenated with standardized numeric features, Huber loss on the standardized target,
AdamW + OneCycleLR stepped per batch. Data: synthetic sales with a learnable rule and noise (seeded torch.Generator).
Own metric: val RMSE (standardized units). Fixed (y_bin dropped before building the categorical list): val RMSE
0.48, test 0.48. With the bug: val RMSE 0.18 (too good to be true: a fresh test set without a known target, where
the bin is filled with a constant, gives RMSE 0.94)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout4"


def make_sales(n, gen):
    store = torch.randint(0, 20, (n,), generator=gen)
    weekday = torch.randint(0, 7, (n,), generator=gen)
    promo = torch.randint(0, 2, (n,), generator=gen)
    price = torch.rand(n, generator=gen) * 4 + 1
    temp = torch.randn(n, generator=gen)
    store_effect = torch.linspace(-1, 1, 20)[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    day_effect = torch.tensor([0.0, -0.2, -0.1, 0.0, 0.3, 0.8, 0.6])
    y = 3 + store_effect[store] + day_effect[weekday] + 0.7 * promo - 0.4 * price + 0.2 * temp
    y = y + 0.5 * torch.randn(n, generator=gen)
    cats = {"store": store.numpy(), "weekday": weekday.numpy(), "promo": promo.numpy()}
    nums = {"price": price.numpy(), "temp": temp.numpy()}
    return cats, nums, y.numpy()


def build_columns(cats, nums, y):
    frame = dict(cats, **nums)
    # decile of the target, for a stratified split
    frame["y_bin"] = np.searchsorted(np.quantile(y, np.linspace(0.1, 0.9, 9)), y)
    cat_cols = [c for c, v in frame.items() if v.dtype.kind == "i"]  # BUG: y_bin is an integer column too
    num_cols = [c for c, v in frame.items() if v.dtype.kind == "f"]
    return frame, cat_cols, num_cols


class TabularMLP(nn.Module):
    def __init__(self, cardinalities, n_num, emb_dim=6, hidden=64):
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(c, emb_dim) for c in cardinalities])
        self.mlp = nn.Sequential(nn.Linear(emb_dim * len(cardinalities) + n_num, hidden), nn.ReLU(),
                                 nn.Dropout(0.1), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x_cat, x_num):
        z = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embs)] + [x_num], 1)
        return self.mlp(z).squeeze(-1)


class LitTabular(L.LightningModule):
    def __init__(self, cardinalities, n_num, total_steps):
        super().__init__()
        self.model = TabularMLP(cardinalities, n_num)
        self.total_steps = total_steps

    def forward(self, x_cat, x_num):
        return self.model(x_cat, x_num)

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        loss = F.huber_loss(self(x_cat, x_num), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        pred = self(x_cat, x_num)
        self.log("val_loss", F.huber_loss(pred, y))
        self.log("val_rmse", F.mse_loss(pred, y).sqrt())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(11)
    gen = torch.Generator().manual_seed(11)
    cats, nums, y = make_sales(3000, gen)
    frame, cat_cols, num_cols = build_columns(cats, nums, y)
    idx_tr, idx_va = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=frame["y_bin"])
    mu, sd = y[idx_tr].mean(), y[idx_tr].std()
    x_cat = torch.tensor(np.stack([frame[c] for c in cat_cols], 1), dtype=torch.long)
    x_num = np.stack([frame[c] for c in num_cols], 1)
    x_num = torch.tensor((x_num - x_num[idx_tr].mean(0)) / x_num[idx_tr].std(0), dtype=torch.float32)
    y_std = torch.tensor((y - mu) / sd, dtype=torch.float32)
    cards = [int(x_cat[:, i].max()) + 1 for i in range(x_cat.shape[1])]
    train = TensorDataset(x_cat[idx_tr], x_num[idx_tr], y_std[idx_tr])
    val = TensorDataset(x_cat[idx_va], x_num[idx_va], y_std[idx_va])
    epochs, bs = 8, 64
    model = LitTabular(cards, len(num_cols), total_steps=epochs * (len(train) // bs + 1))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=bs, shuffle=True), DataLoader(val, batch_size=512))
    # fresh data at prediction time: the target is unknown, its bin gets the most frequent training value
    tc, tn, ty = make_sales(1000, gen)
    t_cat = np.stack([tc[c] if c in tc else np.full(len(ty), 4) for c in cat_cols], 1)
    t_num = np.stack([tn[c] for c in num_cols], 1)
    t_num = (t_num - np.stack([frame[c] for c in num_cols], 1)[idx_tr].mean(0)) / \
        np.stack([frame[c] for c in num_cols], 1)[idx_tr].std(0)
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(t_cat, dtype=torch.long), torch.tensor(t_num, dtype=torch.float32))
    test_rmse = ((pred - torch.tensor((ty - mu) / sd, dtype=torch.float32)) ** 2).mean().sqrt()
    print(f"val_rmse={trainer.callback_metrics['val_rmse'].item():.3f} test_rmse={test_rmse:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
