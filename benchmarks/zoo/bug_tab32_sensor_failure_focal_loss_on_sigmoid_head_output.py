"""Bug: predictive-maintenance classifier on a synthetic sensor table (4000 machine-hours: temperature, vibration
RMS, pressure, rpm, hours since service, load; ~14 % of rows precede a failure). The team's focal loss
(`sigmoid_focal_loss`-style, alpha=0.25, gamma=2) takes logits, as torchvision's does. The model was exported for
serving with a probability head, so its `net` ends in `nn.Sigmoid()`.

What is wrong: training feeds the model output, which is already a probability in (0, 1), into the focal loss,
which applies another sigmoid. Every "logit" is squashed into (0, 1), so the loss's probability lives in
(0.5, 0.73): with alpha=0.25 the cheapest move is to push every output towards 0, gradients through the double
sigmoid are tiny, and the loss sits almost flat instead of learning the failure rule; nothing crashes and the
numbers look like a hard, noisy problem. The fix drops the Sigmoid from the training graph (loss on logits,
sigmoid only when serving).

Measured (same seed): val AUC 0.427 vs 0.833 with logits; val focal loss 0.1180 vs 0.0304."""

import lightning as L
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout32"


def focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(logits)
    ce = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * ce * (1 - p_t) ** gamma).mean()


def make_sensor_table(g, n=4000):
    temp = 60 + 8 * torch.randn(n, generator=g)
    vib = torch.exp(0.4 * torch.randn(n, generator=g))
    pressure = 3 + 0.5 * torch.randn(n, generator=g)
    rpm = 1500 + 200 * torch.randn(n, generator=g)
    since_service = torch.rand(n, generator=g) * 2000
    load = torch.rand(n, generator=g)
    logit = (-4.2 + 0.12 * (temp - 60) + 2.2 * vib.log() + 0.0015 * since_service
             + 1.2 * (load - 0.5) - 0.8 * (pressure - 3))
    y = torch.bernoulli(torch.sigmoid(logit), generator=g)
    return torch.stack([temp, vib, pressure, rpm, since_service, load], 1).numpy(), y.numpy()


class FailureClassifier(L.LightningModule):
    def __init__(self, n_features, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = focal_loss(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", focal_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(3203)
    X, y = make_sensor_table(torch.Generator().manual_seed(3203))
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    x_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    t_tr, t_va = torch.tensor(y_tr, dtype=torch.float32), torch.tensor(y_va, dtype=torch.float32)

    model = FailureClassifier(X.shape[1])
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, t_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, t_va), batch_size=1024))
    model.eval()
    with torch.no_grad():
        out = model(x_va)
    print(f"SYMPTOM val_auc={roc_auc_score(y_va, out.numpy()):.3f} val_focal={focal_loss(out, t_va).item():.4f} "
          f"failure_rate={y.mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
