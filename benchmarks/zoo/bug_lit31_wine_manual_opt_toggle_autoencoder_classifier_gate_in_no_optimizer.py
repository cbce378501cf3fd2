"""Bug: a wine classifier trained with manual optimization and two optimizers in alternation. Step 1 (optimizer
`opt_ae`, encoder + decoder, `toggle_optimizer`) minimises the reconstruction loss of a small autoencoder; step 2
(optimizer `opt_cls`, classification head only) minimises cross-entropy on the code of the toggled-off encoder.
A learnable per-feature input gate (`self.feature_gate`, sigmoid-squashed, meant to learn to down-weight noisy chemistry
measurements) was added to the model later, but `configure_optimizers` lists `self.encoder`, `self.decoder` and
`self.head` explicitly, so the gate sits in neither optimizer: it receives gradients every step (toggling only
touches parameters that some optimizer owns) and never moves.
Nothing crashes and the classifier still works (wine is easy), with the gate stuck at sigmoid(0)=0.5 for every
feature: the weighting it was built to learn never exists. Measured: final gate spread (max-min) 0.000, val acc
1.000 (val loss 0.048); with the gate added to `opt_ae` the gate moves (spread 0.076; val acc 1.000, val loss 0.047).
"""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout31"


class GatedAutoencoderClassifier(L.LightningModule):
    def __init__(self, n_features=13, code=8, lr_ae=3e-3, lr_cls=5e-2):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.feature_gate = nn.Parameter(torch.zeros(n_features))
        self.encoder = nn.Sequential(nn.Linear(n_features, 32), nn.Tanh(), nn.Linear(32, code))
        self.decoder = nn.Sequential(nn.Linear(code, 32), nn.Tanh(), nn.Linear(32, n_features))
        self.head = nn.Linear(code, 3)

    def encode(self, x):
        return self.encoder(x * torch.sigmoid(self.feature_gate))

    def forward(self, x):
        return self.head(self.encode(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_ae, opt_cls = self.optimizers()

        self.toggle_optimizer(opt_ae)
        recon = F.mse_loss(self.decoder(self.encode(x)), x)
        opt_ae.zero_grad()
        self.manual_backward(recon)
        opt_ae.step()
        self.untoggle_optimizer(opt_ae)

        self.toggle_optimizer(opt_cls)
        ce = F.cross_entropy(self(x), y)
        opt_cls.zero_grad()
        self.manual_backward(ce)
        opt_cls.step()
        self.untoggle_optimizer(opt_cls)

        self.log_dict({"recon_loss": recon, "train_loss": ce}, on_epoch=True, prog_bar=False)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        opt_ae = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()], lr=self.hparams.lr_ae)
        opt_cls = torch.optim.SGD(self.head.parameters(), lr=self.hparams.lr_cls, momentum=0.9)
        return opt_ae, opt_cls


def main():
    L.seed_everything(1313)
    data = load_wine()
    x_tr, x_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.2, stratify=data.target,
                                              random_state=13)
    scaler = StandardScaler().fit(x_tr)
    train = TensorDataset(torch.tensor(scaler.transform(x_tr), dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(scaler.transform(x_va), dtype=torch.float32), torch.tensor(y_va))
    model = GatedAutoencoderClassifier()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=64))
    gate = torch.sigmoid(model.feature_gate.detach())
    print(f"SYMPTOM gate_spread={(gate.max() - gate.min()).item():.3f} "
          f"val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
