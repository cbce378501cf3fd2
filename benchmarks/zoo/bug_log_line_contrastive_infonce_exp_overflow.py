"""Bug: SimCLR-style contrastive pretraining of a log-line encoder (token embedding + BiGRU + mean pooling +
projection head). Two views of each tokenised log line are made by token dropout, a random crop and token
substitution; matching views are positives, the rest of the batch negatives. The author wrote the InfoNCE loss out
"as in the paper" - `-log(exp(s_ii / tau) / sum_j exp(s_ij / tau))` - with `tau = 0.01` (CLIP's final logit scale
of 100). With unit-norm embeddings `s / tau` reaches 100, and float32 `exp` overflows above 88.7; two views of
one line share most tokens, so the positives start out nearly parallel (cosine > 0.89) and `inf / inf` gives NaN
from the very first batch. No exception is raised; the logged loss is just `nan`. Symptom: train loss NaN from step 0,
val view-retrieval accuracy (1 of 512) 0.30 - what the untrained encoder gets - vs 0.61 with the same tau written as
`F.cross_entropy(s / tau, arange(B))` (log-sum-exp, no overflow)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout11"
VOCAB, LEN, VIEW_LEN, PAD = 600, 28, 20, 0


def make_lines(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (n, LEN), generator=g)


def augment(line, g=None):
    keep = torch.sort(torch.randperm(LEN, generator=g)[:VIEW_LEN + 2]).values
    start = int(torch.randint(0, 3, (1,), generator=g))
    view = line[keep][start:start + VIEW_LEN].clone()
    sub = torch.rand(VIEW_LEN, generator=g) < 0.1
    view[sub] = torch.randint(1, VOCAB, (int(sub.sum()),), generator=g)
    return view


class TwoViews(Dataset):
    def __init__(self, lines, fixed_seed=None):
        self.lines = lines
        self.fixed_seed = fixed_seed

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        g = None if self.fixed_seed is None else torch.Generator().manual_seed(self.fixed_seed + i)
        return {"view_a": augment(self.lines[i], g), "view_b": augment(self.lines[i], g)}


class LogLineEncoder(nn.Module):
    def __init__(self, d=64, proj=32):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.proj = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.BatchNorm1d(2 * d), nn.ReLU(), nn.Linear(2 * d, proj))

    def forward(self, ids):
        h, _ = self.gru(self.embed(ids))
        return F.normalize(self.proj(h.mean(1)), dim=-1)


class SimCLRLines(L.LightningModule):
    def __init__(self, tau=0.01, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = LogLineEncoder()

    def info_nce(self, za, zb):
        s = za @ zb.T / self.hparams.tau
        pos = torch.exp(s.diagonal())
        return -torch.log(pos / torch.exp(s).sum(1)).mean()

    def training_step(self, batch, batch_idx):
        loss = self.info_nce(self.encoder(batch["view_a"]), self.encoder(batch["view_b"]))
        if not torch.isfinite(loss) and not hasattr(self, "first_bad_step"):
            self.first_bad_step = self.global_step
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        za, zb = self.encoder(batch["view_a"]), self.encoder(batch["view_b"])
        self.log("val_loss", self.info_nce(za, zb))
        self.log("val_retrieval_acc", ((za @ zb.T).argmax(1) == torch.arange(len(za))).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(71)
    train = DataLoader(TwoViews(make_lines(4000, 1)), batch_size=128, shuffle=True, drop_last=True)
    val = DataLoader(TwoViews(make_lines(512, 2), fixed_seed=0), batch_size=512)
    model = SimCLRLines()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="simclr_log_lines"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM first non-finite train loss at step {getattr(model, 'first_bad_step', None)} "
          f"final train_loss {m['train_loss'].item():.3f} val retrieval acc (of 512) {m['val_retrieval_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
