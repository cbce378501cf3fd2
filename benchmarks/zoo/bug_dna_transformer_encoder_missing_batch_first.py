"""Bug: a small Transformer classifier for fixed-length DNA reads (one token per base, learned position
embeddings `trunc_normal_(std=.02)`, a `[CLS]` token whose final state is classified) built with
`nn.TransformerEncoderLayer(d_model, nhead, ...)` without `batch_first=True`, then fed `(batch, length, d_model)`
tensors. The layer reads dimension 0 as the sequence, so each read attends to the reads at the same position in
the other samples of the batch instead of to its own bases. All reads have the same length, so no padding mask is
passed and no shape error ever shows. Task: label = the read holds more A than T.
Val acc 0.52 (chance) vs 1.00 with `batch_first=True`. AdamW, cosine annealing per epoch, tuple batches."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout4"
A, C, G, T, CLS = 0, 1, 2, 3, 4
LENGTH = 32


def reads(n, seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.tensor([0.25, 0.25, 0.25, 0.25])
    x = torch.multinomial(probs, n * LENGTH, replacement=True, generator=g).view(n, LENGTH)
    n_a, n_t = (x == A).sum(1), (x == T).sum(1)
    keep = n_a != n_t
    x, y = x[keep], (n_a > n_t).long()[keep]
    return TensorDataset(torch.cat([torch.full((len(x), 1), CLS), x], dim=1), y)


class ReadClassifier(L.LightningModule):
    def __init__(self, dim=48, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(5, dim)
        self.pos = nn.Parameter(torch.zeros(1, LENGTH + 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.1)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.head(self.norm(h[:, 0]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(-1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(4107)
    train = DataLoader(reads(3000, 0), batch_size=32, shuffle=True)
    val = DataLoader(reads(600, 1), batch_size=128)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ReadClassifier(), train, val)
    print(f"val_acc={trainer.callback_metrics['val_acc']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
