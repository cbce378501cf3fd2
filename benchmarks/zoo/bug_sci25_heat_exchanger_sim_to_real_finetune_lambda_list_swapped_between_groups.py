"""Bug: sim-to-real transfer for a heat exchanger. An MLP encoder is first pre-trained (plain torch loop) on
plentiful simulated operating points (6 inputs: flow rates, inlet temperatures, fouling proxy, fan speed ->
outlet temperature). It is then fine-tuned with Lightning on only 80 noisy measurements of the real unit
(sensor gain and offset, heat loss to ambient) with a freshly initialized head. The usual recipe: two parameter
groups, the pre-trained encoder kept frozen for the first 3 epochs (LambdaLR factor 0, then 0.3) while the new
head trains at full rate from the start; inputs and target standardized with training statistics; AdamW; MSE.

`LambdaLR(opt, [head_schedule, encoder_schedule])` lists the lambdas in the order the author thinks of them,
but the optimizer's groups are `[encoder, head]`: the lambdas are matched by position. The new random head
therefore gets learning rate 0 for the first 3 of 10 epochs (its weights stay at their random init although
they require grad), while the pre-trained encoder is rewritten at full rate on 80 noisy points to suit a random
head. The loss still decreases (the encoder can adapt). Symptom: val MSE 0.033 vs 0.026 with the lambdas in
group order.
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout25"
FROZEN_EPOCHS = 3


def operating_points(n, g, measured=False):
    x = torch.rand(n, 6, generator=g)
    m_hot, m_cold, t_hot, t_cold, fouling, fan = x.T
    ua = (1.5 + fan) / (1 + 2 * fouling) * (m_hot * m_cold) ** 0.3
    eff = 1 - torch.exp(-ua / (0.5 + m_hot))
    t_out = t_hot - eff * (t_hot - t_cold)
    if measured:
        # the real unit: sensor gain/offset, heat loss to ambient, sensor noise
        real = 1.08 * t_out - 0.05 * eff * fan + 0.03 + 0.02 * torch.randn(n, generator=g)
        return x + 0.01 * torch.randn(n, 6, generator=g), real
    return x, t_out


def encoder():
    return nn.Sequential(nn.Linear(6, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 64), nn.SiLU())


class FineTuner(L.LightningModule):
    def __init__(self, enc, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["enc"])
        self.encoder = enc
        self.head = nn.Sequential(nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW([{"params": self.encoder.parameters(), "name": "encoder"},
                                 {"params": self.head.parameters(), "name": "head"}],
                                lr=self.hparams.lr, weight_decay=1e-4)

        def head_schedule(epoch):
            return 1.0

        def encoder_schedule(epoch):
            return 0.0 if epoch < FROZEN_EPOCHS else 0.3

        return [opt], [torch.optim.lr_scheduler.LambdaLR(opt, [head_schedule, encoder_schedule])]


def pretrain(enc, g):
    x, y = operating_points(8000, g)
    y = (y - y.mean()) / y.std()
    x = (x - 0.5) / 0.29
    sim_head = nn.Linear(64, 1)
    opt = torch.optim.Adam([*enc.parameters(), *sim_head.parameters()], lr=3e-3)
    for _ in range(300):
        idx = torch.randint(0, len(x), (128,), generator=g)
        loss = F.mse_loss(sim_head(enc(x[idx])).squeeze(-1), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc


def main():
    L.seed_everything(5150)
    g = torch.Generator().manual_seed(6)
    enc = pretrain(encoder(), g)
    x, y = operating_points(350, g, measured=True)
    x_tr, x_va, y_tr, y_va = x[:80], x[80:], y[:80], y[80:]
    mu, sd, y_mu, y_sd = x_tr.mean(0), x_tr.std(0), y_tr.mean(), y_tr.std()
    train = TensorDataset((x_tr - mu) / sd, (y_tr - y_mu) / y_sd)
    val = TensorDataset((x_va - mu) / sd, (y_va - y_mu) / y_sd)
    model = FineTuner(enc)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=200))
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
