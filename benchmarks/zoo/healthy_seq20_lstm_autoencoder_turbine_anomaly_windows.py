"""Healthy: LSTM encoder-decoder autoencoder for anomaly detection on 4-channel wind-turbine sensor windows
(32 steps). It is trained to reconstruct normal windows only (the target is the input itself, by design); the
decoder gets the bottleneck code repeated over time, never the input. Channels are standardised with statistics
from the normal training windows. Validation holds normal windows and 10 % anomalous ones (a stuck sensor, a spike
burst or a broken cross-channel relation); the reconstruction error is the anomaly score.
Final: val recon MSE (normal windows) 0.030, anomaly AUROC 0.94."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout20"
T = 32

L.seed_everything(5150)


def turbine_windows(n, seed, anomaly_rate=0.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    wind = 8 + 3 * torch.rand(n, 1, generator=g) + torch.sin(0.15 * t + 6.28 * torch.rand(n, 1, generator=g))
    rotor = 1.6 * wind + 0.2 * torch.randn(n, T, generator=g)
    power = 0.05 * wind ** 3 + 2 * torch.randn(n, T, generator=g)
    temp = 40 + 0.5 * t / T * wind + 0.3 * torch.randn(n, T, generator=g)
    x = torch.stack([wind, rotor, power, temp], dim=2)          # (N, T, 4)
    label = torch.rand(n, generator=g) < anomaly_rate
    for i in torch.nonzero(label).flatten().tolist():
        kind = int(torch.randint(3, (1,), generator=g))
        ch = int(torch.randint(4, (1,), generator=g))
        s = int(torch.randint(4, 20, (1,), generator=g))
        if kind == 0:
            x[i, s:, ch] = x[i, s, ch]                          # stuck sensor
        elif kind == 1:
            x[i, s:s + 4, ch] += 4 * x[:, :, ch].std() * torch.sign(torch.randn(4, generator=g))
        else:
            x[i, :, 2] = 0.05 * x[i, :, 0].flip(0) ** 3 + 2 * torch.randn(T, generator=g)   # power decoupled
    return x, label.long()


class LSTMAutoencoder(L.LightningModule):
    def __init__(self, n_ch=4, hidden=48, code=12, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.LSTM(n_ch, hidden, batch_first=True)
        self.to_code = nn.Linear(hidden, code)
        self.decoder = nn.LSTM(code, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_ch)

    def forward(self, x):
        _, (h, _) = self.encoder(x)
        z = self.to_code(h[-1])
        dec, _ = self.decoder(z.unsqueeze(1).expand(-1, x.shape[1], -1))
        return self.out(dec)

    def score(self, x):
        return ((self(x) - x) ** 2).mean(dim=(1, 2))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x), x)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, label = batch
        err = self.score(x)
        self.log("val_recon_normal", err[label == 0].mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=8, gamma=0.3)}


if __name__ == "__main__":
    train_x, _ = turbine_windows(2000, seed=1)
    val_x, val_y = turbine_windows(500, seed=2, anomaly_rate=0.1)
    mu, sd = train_x.mean(dim=(0, 1)), train_x.std(dim=(0, 1))
    train_x, val_x = (train_x - mu) / sd, (val_x - mu) / sd
    model = LSTMAutoencoder()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_turbine_ae"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train_x), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val_x, val_y), batch_size=250))
    model.eval()
    with torch.no_grad():
        auroc = roc_auc_score(val_y.numpy(), model.score(val_x).numpy())
    print(f"SYMPTOM val_recon_normal={trainer.callback_metrics['val_recon_normal'].item():.4f} anomaly_auroc={auroc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
