"""Bug (schedule): an FT-Transformer (Gorishniy et al. 2021) on the digits table (64 pixel columns as numeric
features) trained with `OneCycleLR` sized in optimizer steps (`total_steps = epochs * steps_per_epoch`) but returned
as `[opt], [sched]`, so Lightning steps it once per epoch (the default `interval="epoch"`). The schedule advances 10
of its 220 steps: the lr stays in the first part of the warm-up, between max_lr / 25 = 4e-5 and about 1.3e-4, for
the whole run. Symptom: val loss 1.87 and val acc 0.52 vs 0.58 and 0.93 with `"interval": "step"`.

Model: a feature tokenizer (one weight and bias vector per numeric feature), a CLS token, two pre-norm
`nn.TransformerEncoderLayer`s (batch-first, GELU, dropout 0.1), LayerNorm-ReLU-Linear head on the CLS token;
AdamW with weight decay off for the tokenizer, norms and biases; features standardized (`StandardScaler` fitted on
the training split)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout6"


class FeatureTokenizer(nn.Module):
    def __init__(self, n_features, d_token):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, d_token))
        self.bias = nn.Parameter(torch.empty(n_features, d_token))
        bound = 1 / math.sqrt(d_token)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return x[..., None] * self.weight + self.bias


class FTTransformer(L.LightningModule):
    def __init__(self, n_features, n_classes, steps_per_epoch, epochs, d_token=32, n_layers=2, max_lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = FeatureTokenizer(n_features, d_token)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d_token) / math.sqrt(d_token))
        layer = nn.TransformerEncoderLayer(d_token, nhead=4, dim_feedforward=2 * d_token, dropout=0.1,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, n_classes))

    def forward(self, x):
        tokens = self.tokenizer(x)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1)
        return self.head(self.encoder(tokens)[:, 0])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        no_decay = [p for n, p in self.named_parameters() if p.ndim <= 1 or n.startswith(("tokenizer", "cls_token"))]
        decay = [p for n, p in self.named_parameters() if not (p.ndim <= 1 or n.startswith(("tokenizer", "cls_token")))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-5}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.max_lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.max_lr, total_steps=self.hparams.epochs * self.hparams.steps_per_epoch)
        return [opt], [sched]


def main():
    L.seed_everything(68)
    data = load_digits()
    x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.25, random_state=68,
                                              stratify=data.target)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)
    train = TensorDataset(torch.tensor(x_tr, dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(x_va, dtype=torch.float32), torch.tensor(y_va))
    epochs, batch_size = 10, 64
    steps_per_epoch = math.ceil(len(train) / batch_size)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FTTransformer(x_tr.shape[1], 10, steps_per_epoch, epochs),
                DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
