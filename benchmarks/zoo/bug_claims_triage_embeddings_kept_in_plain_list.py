"""Bug: insurance-claim triage classifier (4 outcome classes) over a table with five categorical columns (agent,
repair shop, region, vehicle make, policy type; 12-150 levels each) and four numeric columns. The model builds one
`nn.Embedding` per categorical column in a list comprehension and keeps it in a plain Python list
(`self.embeddings = [...]`) instead of an `nn.ModuleList`. The embeddings are used in forward and their weights
even receive gradients, but they are not registered, so `self.parameters()` - and the Adam optimizer - never sees
them: the categorical columns stay at their random initial vectors while the MLP on top tries to decode them.
Nothing errors and the loss goes down. Symptom: val acc 0.47 / val loss 1.19 vs 0.72 / 0.71 with nn.ModuleList."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout18"
CARDINALITIES = {"agent": 300, "repair_shop": 250, "region": 12, "make": 40, "policy": 8}
EMB_DIM = 3


def make_claims(n, g, effects):
    cats = torch.stack([torch.randint(c, (n,), generator=g) for c in CARDINALITIES.values()], 1)
    nums = torch.randn(n, 4, generator=g) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + torch.tensor([0.0, 5.0, 1.0, 10.0])
    score = sum(effects[i][cats[:, i]] for i in range(len(CARDINALITIES)))  # (n, 4)
    score = score + nums[:, :1] * torch.tensor([0.5, -0.5, 0.0, 0.3]) + 0.3 * torch.randn(n, 4, generator=g)
    return cats, nums, score.argmax(1)


class ClaimTriage(L.LightningModule):
    def __init__(self, num_mean, num_std, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = [nn.Embedding(card, EMB_DIM) for card in CARDINALITIES.values()]
        self.register_buffer("num_mean", num_mean)
        self.register_buffer("num_std", num_std)
        width = EMB_DIM * len(CARDINALITIES) + 4
        self.mlp = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 64), nn.ReLU(),
                                 nn.Linear(64, 4))

    def forward(self, cats, nums):
        parts = [emb(cats[:, i]) for i, emb in enumerate(self.embeddings)]
        parts.append((nums - self.num_mean) / self.num_std)
        return self.mlp(torch.cat(parts, 1))

    def training_step(self, batch, batch_idx):
        cats, nums, y = batch
        loss = F.cross_entropy(self(cats, nums), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        cats, nums, y = batch
        logits = self(cats, nums)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


if __name__ == "__main__":
    L.seed_everything(404)
    g = torch.Generator().manual_seed(404)
    effects = [torch.randn(c, 2, generator=g) @ torch.randn(2, 4, generator=g) for c in CARDINALITIES.values()]
    tr = make_claims(8000, g, effects)
    va = make_claims(2000, g, effects)
    model = ClaimTriage(tr[1].mean(0), tr[1].std(0))
    trainer = L.Trainer(
        max_epochs=10,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="claims_triage"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(*tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(*va), batch_size=1024))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
