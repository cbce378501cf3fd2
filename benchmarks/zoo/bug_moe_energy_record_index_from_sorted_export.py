"""Bug (target leakage through feature engineering): the meter readings arrive as an export from the billing
system, which sorts rows by consumption. The engineer believes the rows are in collection order and adds the row
position `record_idx = arange(n) / n` as a "drift over time" feature, then splits at random. The position encodes
the rank of the target. Symptom: val R^2 0.98 (without the position feature, as in healthy_switch_moe_energy_regression_huber: 0.94), but on a
fresh month of readings in true collection order, test R^2 -0.08: the model reads the answer from the row order.

Model: a Switch-style mixture of experts (top-1 routing, load-balancing auxiliary loss) for a building's hourly
energy use (temperature, hour sin/cos, log floor area, building-type embedding), Huber loss on the standardized
target, Adam, StepLR, a LightningDataModule."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout5"


def make_energy(n, gen):
    btype = torch.randint(0, 4, (n,), generator=gen)
    temp = 15 + 10 * torch.randn(n, generator=gen)
    hour = torch.randint(0, 24, (n,), generator=gen).float()
    area = torch.exp(6 + 0.5 * torch.randn(n, generator=gen))
    occupied = ((hour >= 8) & (hour <= 18)).float()
    heat = torch.relu(18 - temp) * torch.tensor([1.0, 0.4, 2.0, 0.8])[btype]
    cool = torch.relu(temp - 22) * torch.tensor([0.3, 1.5, 0.5, 1.0])[btype]
    base = torch.tensor([5.0, 12.0, 3.0, 8.0])[btype] * (1 + occupied * torch.tensor([0.2, 1.5, 0.1, 2.0])[btype])
    y = (base + heat + cool) * area / 400 + 1.5 * torch.randn(n, generator=gen)
    num = torch.stack([temp, torch.sin(hour * 2 * math.pi / 24), torch.cos(hour * 2 * math.pi / 24),
                       torch.log(area)], 1)
    return num, btype, y


def add_record_index(num):
    """Row position in the file as a slow-drift feature (assumes rows are in collection order)."""
    return torch.cat([num, (torch.arange(len(num)) / len(num)).unsqueeze(1)], 1)


class EnergyData(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(43)
        num, btype, y = make_energy(4000, gen)
        order = torch.argsort(y)  # the billing export is sorted by consumption
        num, btype, y = num[order], btype[order], y[order]
        num = add_record_index(num)
        perm = torch.randperm(len(y), generator=gen)
        tr, va = perm[:3200], perm[3200:]
        self.mu, self.sd = num[tr].mean(0), num[tr].std(0)
        self.y_mu, self.y_sd = y[tr].mean(), y[tr].std()
        num = (num - self.mu) / self.sd
        y = (y - self.y_mu) / self.y_sd
        self.train_set = TensorDataset(num[tr], btype[tr], y[tr])
        self.val_set = TensorDataset(num[va], btype[va], y[va])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=400)


class SwitchMoE(nn.Module):
    def __init__(self, d_in, n_experts=4, hidden=64):
        super().__init__()
        self.gate = nn.Linear(d_in, n_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, hidden), nn.SiLU(), nn.Linear(hidden, 1)) for _ in range(n_experts))
        self.n_experts = n_experts

    def forward(self, h):
        probs = F.softmax(self.gate(h), dim=-1)
        top_p, top_i = probs.max(-1)
        out = torch.zeros(h.shape[0], device=h.device)
        for e, expert in enumerate(self.experts):
            sel = top_i == e
            if sel.any():
                out[sel] = expert(h[sel]).squeeze(-1) * top_p[sel]
        frac = F.one_hot(top_i, self.n_experts).float().mean(0)
        aux = self.n_experts * (frac * probs.mean(0)).sum()
        return out, aux


class EnergyModel(nn.Module):
    def __init__(self, n_num=5, n_types=4, emb=4):
        super().__init__()
        self.type_emb = nn.Embedding(n_types, emb)
        self.proj = nn.Sequential(nn.Linear(n_num + emb, 32), nn.SiLU())
        self.moe = SwitchMoE(32)

    def forward(self, num, btype):
        return self.moe(self.proj(torch.cat([num, self.type_emb(btype)], 1)))


class LitEnergy(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = EnergyModel()

    def training_step(self, batch, batch_idx):
        num, btype, y = batch
        pred, aux = self.model(num, btype)
        loss = F.huber_loss(pred, y, delta=1.0) + 0.01 * aux
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        num, btype, y = batch
        pred, _ = self.model(num, btype)
        mse = F.mse_loss(pred, y)
        self.log("val_loss", F.huber_loss(pred, y, delta=1.0))
        self.log("val_r2", 1 - mse / y.var())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.3)]


def main():
    L.seed_everything(47)
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    data, model = EnergyData(), LitEnergy()
    trainer.fit(model, datamodule=data)
    print(f"val_r2={trainer.callback_metrics['val_r2'].item():.3f}")
    num, btype, y = make_energy(1000, torch.Generator().manual_seed(7))  # next month, collection order
    num = (add_record_index(num) - data.mu) / data.sd
    y = (y - data.y_mu) / data.y_sd
    model.eval()
    with torch.no_grad():
        pred, _ = model.model(num, btype)
    print(f"test_r2={1 - F.mse_loss(pred, y).item() / y.var().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
