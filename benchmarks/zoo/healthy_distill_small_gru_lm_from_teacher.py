"""Healthy: knowledge distillation of a small GRU language model from a bigger one. The teacher (2-layer GRU,
128 units) is pretrained first in a plain PyTorch loop, then frozen (`requires_grad_(False)`, eval mode, kept
outside the optimizer); the student (1 layer, 48 units) is trained in Lightning on
`alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, next token)` with
T = 2, `F.kl_div(..., reduction="batchmean")` on log-probabilities. Tuple batches `(x, y)`, `y` = the sequence
shifted by one. Data: a second-order Markov "language" over 16 symbols (2 equally likely successors for each
pair, so the causal floor is ln 2 = 0.693). AdamW, ExponentialLR per epoch. Student reaches val CE 0.93 (teacher
0.87; a unigram model ~2.77)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"
VOCAB, SEQ = 16, 24


def markov2(n, seed):
    table = torch.stack([torch.randperm(VOCAB, generator=torch.Generator().manual_seed(100 + i))[:2]
                         for i in range(VOCAB * VOCAB)]).view(VOCAB, VOCAB, 2)
    g = torch.Generator().manual_seed(seed)
    s = torch.empty(n, SEQ + 1, dtype=torch.long)
    s[:, :2] = torch.randint(0, VOCAB, (n, 2), generator=g)
    for t in range(2, SEQ + 1):
        s[:, t] = table[s[:, t - 2], s[:, t - 1], torch.randint(0, 2, (n,), generator=g)]
    return TensorDataset(s[:, :-1], s[:, 1:])


class GruLM(nn.Module):
    def __init__(self, dim, layers):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.rnn = nn.GRU(dim, dim, num_layers=layers, batch_first=True)
        self.head = nn.Linear(dim, VOCAB)

    def forward(self, x):
        return self.head(self.rnn(self.embed(x))[0])


def pretrain_teacher(data, steps=200):
    teacher = GruLM(128, 2)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    loader = DataLoader(data, batch_size=64, shuffle=True)
    it = iter(loader)
    for _ in range(steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        loss = F.cross_entropy(teacher(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher.eval().requires_grad_(False)


class LitDistill(L.LightningModule):
    def __init__(self, teacher, temperature=2.0, alpha=0.7, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = GruLM(48, 1)

    def forward(self, x):
        return self.student(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        with torch.no_grad():
            t_logits = self.teacher(x)
        T, a = self.hparams.temperature, self.hparams.alpha
        kd = F.kl_div(F.log_softmax(logits / T, -1).reshape(-1, VOCAB), F.log_softmax(t_logits / T, -1).reshape(-1, VOCAB),
                      reduction="batchmean", log_target=True) * T * T
        ce = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss = a * kd + (1 - a) * ce
        self.log_dict({"train_loss": loss, "train_ce": ce})
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1)))
        self.log("val_teacher", F.cross_entropy(self.teacher(x).reshape(-1, VOCAB), y.reshape(-1)))

    def on_train_epoch_start(self):
        self.teacher.eval()  # Lightning put the whole module back in train mode

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.7)]


def main():
    L.seed_everything(4112)
    train_ds, val_ds = markov2(1500, 0), markov2(300, 1)
    teacher = pretrain_teacher(train_ds)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitDistill(teacher), DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=300))
    m = trainer.callback_metrics
    print(f"val_ce={m['val_loss']:.3f} teacher={m['val_teacher']:.3f} floor={math.log(2):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
