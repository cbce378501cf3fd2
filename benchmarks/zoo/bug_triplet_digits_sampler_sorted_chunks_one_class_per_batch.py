"""Bug (batches of one class): the batch-hard triplet set-up of healthy_batch_hard_triplet_digits_pk_sampler, but the
P x K sampler was replaced by a "simpler" class-grouped sampler: it sorts the training indices by label, cuts them
into consecutive chunks of 64 and shuffles the order of the chunks, so that "every anchor has positives in its
batch". With about 144 images per class, almost every batch holds a single class: batch-hard mining finds no
negative (the hardest "negative" sits at +1e4), the loss only pulls same-class embeddings together and never pushes
classes apart. Symptom: val leave-one-out 1-NN acc 0.94 vs 0.99, val batch-hard triplet loss 0.39 vs 0.20, with the
P x K sampler (the fixed script)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout9"


class ClassGroupedBatchSampler(Sampler):
    """Batches of consecutive same-class samples, in shuffled order, so that anchors have positives."""

    def __init__(self, labels, batch_size=64, seed=0):
        self.chunks = list(labels.argsort(stable=True).split(batch_size))
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.chunks)

    def __iter__(self):
        for i in torch.randperm(len(self.chunks), generator=self.g).tolist():
            yield self.chunks[i].tolist()


def batch_hard_triplet_loss(emb, labels, margin=0.2):
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    hardest_pos = (d * same.float()).max(1).values
    hardest_neg = (d + 1e4 * same.float()).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class EmbeddingNet(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, dim))

    def forward(self, x):
        return F.normalize(self.body(x), dim=1)


class LitTriplet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = EmbeddingNet()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = batch_hard_triplet_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        emb = self(x)
        self.log("val_loss", batch_hard_triplet_loss(emb, y))
        d = torch.cdist(emb, emb) + 1e4 * torch.eye(len(y), device=emb.device)
        self.log("val_1nn_acc", (y[d.argmin(1)] == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(13)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.31) / 0.38
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=13, stratify=y)
    train_ds = TensorDataset(x[i_tr], y[i_tr])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitTriplet(), DataLoader(train_ds, batch_sampler=ClassGroupedBatchSampler(y[i_tr], seed=13)),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    m = trainer.callback_metrics
    print(f"val_1nn_acc={m['val_1nn_acc'].item():.3f} val_triplet_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
