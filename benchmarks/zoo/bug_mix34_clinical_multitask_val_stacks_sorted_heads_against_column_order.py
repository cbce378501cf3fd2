"""Bug: multi-task regressor on a synthetic clinical intake table (1000 patients, 12 standardised columns: age, BMI,
waist, sodium intake, activity, family history ...) with two targets, systolic blood pressure and fasting glucose,
each z-scored with training statistics and driven by different columns. A shared trunk feeds one head per task held
in `nn.ModuleDict({name: ... for name in sorted(TASKS)})`. The training step looks each head up by name against the
target column of the same name, so training is right. The validation step was "vectorised": it concatenates
`[head(h) for head in self.heads.values()]` and compares with the target matrix, whose columns follow TASKS
(systolic_bp, glucose), while the dict iterates in sorted order (glucose, systolic_bp): every validation prediction
is scored against the other task's target. Training loss falls normally; validation gets worse than predicting the
mean. Symptom: val loss (MSE summed over the two tasks, as in training) 4.07, twice the 2.0 of the
mean predictor, while train loss reaches 0.146; 0.204 when the heads are taken in TASKS order."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout34"
TASKS = ["systolic_bp", "glucose"]


def intake_table(n=1000, d=12, seed=34):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    sbp = 1.2 * x[:, 0] + 0.8 * x[:, 3] - 0.6 * x[:, 4] + 0.5 * torch.tanh(x[:, 0] * x[:, 3])
    glucose = 1.0 * x[:, 1] + 0.7 * x[:, 2] * x[:, 5].sign() + 0.6 * x[:, 6]
    y = torch.stack([sbp, glucose], 1) + 0.3 * torch.randn(n, 2, generator=g)
    return x, y


class IntakeMultiTask(L.LightningModule):
    def __init__(self, d=12, hidden=96, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, 1) for name in sorted(TASKS)})

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h).squeeze(-1) for name, head in self.heads.items()}

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        losses = {name: F.mse_loss(out[name], y[:, i]) for i, name in enumerate(TASKS)}
        loss = sum(losses.values())
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        h = self.trunk(x)
        pred = torch.cat([head(h) for head in self.heads.values()], 1)
        self.log("val_loss", F.mse_loss(pred, y) * len(TASKS))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(34)
    x, y = intake_table()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(34))
    tr, va = perm[:800], perm[800:]
    x = (x - x[tr].mean(0)) / x[tr].std(0)
    y = (y - y[tr].mean(0)) / y[tr].std(0)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IntakeMultiTask(), DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[va], y[va]), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
