"""Bug: thermal-resistance regression for plate-fin heat sinks. An MLP maps (fin count, fin height, fin thickness,
base length, air velocity, fin conductivity) to the sink's thermal resistance in K/W, trained with Adam, a linear
warm-up then cosine decay (SequentialLR), and gradient clipping. The labels come from a fin-efficiency model
(tanh(mL)/mL fins, laminar flat-plate convection) with 3 % noise.

The user writes the loss by hand, `((pred - y) ** 2).mean()`, to later swap in a relative error, with
`pred = self.net(x)` of shape (B, 1) and `y` of shape (B,). The subtraction broadcasts to a (B, B) matrix, so
every prediction is pulled towards every target of the batch: the optimum is the batch mean, whatever the input.
No shape warning is raised because no loss function was called. Symptom: val R^2 0.05 (val MSE 0.97 on
standardised log-resistance) vs val R^2 0.998 (MSE 0.0024) with `pred = self.net(x).squeeze(-1)`."""

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout17"


def heat_sinks(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    fins = torch.randint(6, 40, (n,), generator=g).float()
    height = 0.01 + 0.05 * torch.rand(n, generator=g)
    thick = 0.0005 + 0.002 * torch.rand(n, generator=g)
    length = 0.03 + 0.12 * torch.rand(n, generator=g)
    velocity = 0.5 + 5.5 * torch.rand(n, generator=g)
    k_fin = 150 + 250 * torch.rand(n, generator=g)  # aluminium .. copper
    nu, k_air, pr = 1.6e-5, 0.026, 0.71
    re = velocity * length / nu
    h = 0.664 * k_air / length * re**0.5 * pr ** (1 / 3)
    m = torch.sqrt(2 * h / (k_fin * thick))
    eta = torch.tanh(m * height) / (m * height)
    area = fins * 2 * height * length
    r = 1.0 / (h * eta * area) + 0.02
    r = r * (1 + 0.03 * torch.randn(n, generator=g))
    x = torch.stack([fins, height, thick, length, velocity, k_fin], 1)
    return x, r


class HeatSinkMLP(L.LightningModule):
    def __init__(self, lr: float = 3e-3, warmup: int = 60):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(6, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x)

    def loss(self, pred, y):
        return ((pred - y) ** 2).mean()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=self.hparams.warmup)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - self.hparams.warmup)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[self.hparams.warmup])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(31)
    x, r = heat_sinks(2500, seed=8)
    n_train = 2000
    x = torch.log(x)
    x = (x - x[:n_train].mean(0)) / x[:n_train].std(0)
    y = torch.log(r)
    y = (y - y[:n_train].mean()) / y[:n_train].std()
    train = TensorDataset(x[:n_train], y[:n_train])
    val = TensorDataset(x[n_train:], y[n_train:])
    model = HeatSinkMLP()
    trainer = L.Trainer(
        max_epochs=20,
        gradient_clip_val=1.0,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="heat_sink"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=50, shuffle=True), DataLoader(val, batch_size=500))
    model.eval()
    with torch.no_grad():
        pred = model(val.tensors[0]).reshape(-1)
    mse = ((pred - val.tensors[1]) ** 2).mean().item()
    print(f"SYMPTOM val_mse={mse:.4f} val_r2={1 - mse / val.tensors[1].var().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
