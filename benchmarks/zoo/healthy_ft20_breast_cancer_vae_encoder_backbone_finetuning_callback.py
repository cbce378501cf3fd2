"""Healthy: VAE pretraining then classification fine-tuning on sklearn's breast_cancer with Lightning's
BackboneFinetuning callback. Stage 1 trains a tabular VAE (standardized 30 features, 8-d latent, Gaussian
likelihood, KL annealed in over the first epochs) on the training rows. Stage 2 reuses the VAE encoder trunk as
`self.backbone` under a new head; BackboneFinetuning keeps the backbone frozen (BatchNorm included, so it stays in
eval mode) for the first 5 epochs, then unfreezes it into a new parameter group at 1/10 of the head's lr and ramps
it up. Class weights handle the 63/37 imbalance. Final val acc 0.965, val loss 0.12."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BackboneFinetuning
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout20"


def make_trunk():
    return nn.Sequential(nn.Linear(30, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())


class TabularVAE(L.LightningModule):
    def __init__(self, latent=8, kl_warmup_epochs=5):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = make_trunk()
        self.mu = nn.Linear(32, latent)
        self.logvar = nn.Linear(32, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 30))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        h = self.trunk(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.mse_loss(self.decoder(z), x, reduction="none").sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        beta = min(1.0, (self.current_epoch + 1) / self.hparams.kl_warmup_epochs)
        loss = recon + beta * kl
        self.log_dict({"elbo_loss": loss, "recon": recon, "kl": kl}, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


class Classifier(L.LightningModule):
    def __init__(self, trunk, class_weights, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["trunk"])
        self.backbone = trunk
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 2))
        self.register_buffer("class_weights", class_weights)

    def forward(self, x):
        return self.head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y, weight=self.class_weights))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.hparams.lr)


def main():
    L.seed_everything(2718)
    data = load_breast_cancer()
    X_tr, X_va, y_tr, y_va = train_test_split(data.data, data.target, test_size=0.25, stratify=data.target,
                                              random_state=11)
    scaler = StandardScaler().fit(X_tr)
    X_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
    X_va = torch.tensor(scaler.transform(X_va), dtype=torch.float32)
    y_tr, y_va = torch.tensor(y_tr), torch.tensor(y_va)

    vae = TabularVAE()
    pre = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                    enable_checkpointing=False, enable_model_summary=False)
    pre.fit(vae, DataLoader(TensorDataset(X_tr), batch_size=32, shuffle=True, drop_last=True))

    counts = torch.bincount(y_tr, minlength=2).float()
    model = Classifier(vae.trunk, class_weights=counts.sum() / (2 * counts))
    finetune = BackboneFinetuning(unfreeze_backbone_at_epoch=5, backbone_initial_ratio_lr=0.1,
                                  lambda_func=lambda epoch: 1.3, should_align=True, train_bn=False)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=[finetune, *lightning_sanity.default_callbacks()], enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"param_groups={len(trainer.optimizers[0].param_groups)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
