"""Bug: SCARF-style contrastive pretraining on the breast-cancer table (two corrupted views per row, MLP encoder,
InfoNCE over the B x B similarity matrix z1 @ z2.T / 0.1) with the targets copied from a MoCo recipe:
`labels = torch.zeros(B)` (MoCo's logits put the positive in column 0), while here each row's positive is on the
diagonal. Every row is trained to match the batch's FIRST row: the embeddings collapse towards one point.
Adam, CosineAnnealingLR. Measured: val InfoNCE 4.95 = ln 143 (chance), retrieval top-1 0.105, 1-NN accuracy
0.902, vs 3.28 / 0.266 / 0.923 with `torch.arange(B)` (healthy_scarf_tabular_infonce)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"constant-output", "label-distribution"}
SPLIT = "heldout2"


def corrupt(x, rate=0.3):
    mask = torch.rand_like(x) < rate
    donors = x[torch.randint(0, len(x), (len(x),), device=x.device)]
    return torch.where(mask, donors, x)


class Scarf(L.LightningModule):
    def __init__(self, n_features=30, dim=64, tau=0.1, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(n_features, 128), nn.ReLU(), nn.Linear(128, dim))
        self.projector = nn.Sequential(nn.ReLU(), nn.Linear(dim, 32))

    def embed(self, x):
        return F.normalize(self.projector(self.encoder(x)), dim=-1)

    def info_nce(self, x):
        z1, z2 = self.embed(corrupt(x)), self.embed(corrupt(x))
        logits = z1 @ z2.T / self.hparams.tau
        # BUG: copied from a MoCo recipe, where the positive is column 0 of [pos | queue]; here it is the diagonal
        labels = torch.zeros(len(x), dtype=torch.long, device=x.device)
        return F.cross_entropy(logits, labels), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self.info_nce(batch[0])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss, logits = self.info_nce(x)
        self.log("val_loss", loss)
        self.log("val_top1", (logits.argmax(-1) == torch.arange(len(x), device=x.device)).float().mean())
        h = F.normalize(self.encoder(x), dim=-1)
        sim = (h @ h.T).fill_diagonal_(-2.0)
        self.log("val_knn_acc", (y[sim.argmax(-1)] == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2109)
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    x_tr, x_va = [torch.tensor((a - mu) / sd, dtype=torch.float32) for a in (x_tr, x_va)]
    train = DataLoader(TensorDataset(x_tr, torch.tensor(y_tr)), batch_size=64, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(x_va, torch.tensor(y_va)), batch_size=len(x_va))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Scarf(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_top1={float(m['val_top1']):.3f} "
          f"val_knn_acc={float(m['val_knn_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
