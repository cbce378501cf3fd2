"""Bug: a neural marked point process for event sequences (synthetic user activity logs: 6 event types following a
seeded Markov chain, log-normal inter-event gaps whose mean depends on the current type). A GRU reads
(type embedding, log gap since the previous event) and has two heads: the next event type (cross-entropy) and the log
time until the next event (MSE). To let the type head settle first, the time loss is ramped in over the first epochs:
`w = min(1.0, self.current_epoch // TIME_RAMP_EPOCHS)`.

The `//` makes the ramp a step function that is 0 for every epoch before TIME_RAMP_EPOCHS = 8, and the run only has
6 epochs, so the time loss is multiplied by zero throughout: the time head (and its bias) gets exactly zero gradient
and never moves from its random init. The total loss still goes down nicely because the type loss trains. Symptom:
val MSE of the log-gap prediction 0.768 (the log gaps' variance is 0.959); with `/` (the fix) it is 0.257, and the
type accuracy is the same (0.763)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout23"
N_TYPES, SEQ_LEN, TIME_RAMP_EPOCHS = 6, 40, 8


def event_logs(n, g):
    trans = (2.5 * torch.randn(N_TYPES, N_TYPES, generator=g)).softmax(-1)
    mean_log_gap = torch.linspace(-1.0, 1.5, N_TYPES)
    types = torch.zeros(n, SEQ_LEN + 1, dtype=torch.long)
    types[:, 0] = torch.randint(0, N_TYPES, (n,), generator=g)
    for t in range(1, SEQ_LEN + 1):
        types[:, t] = torch.multinomial(trans[types[:, t - 1]], 1, generator=g).squeeze(1)
    log_gap = torch.zeros(n, SEQ_LEN + 1)
    log_gap[:, 1:] = mean_log_gap[types[:, :-1]] + 0.5 * torch.randn(n, SEQ_LEN, generator=g)
    return types[:, :-1], log_gap[:, :-1], types[:, 1:], log_gap[:, 1:]


class EventGRU(L.LightningModule):
    def __init__(self, d=32, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.type_emb = nn.Embedding(N_TYPES, d)
        self.gru = nn.GRU(d + 1, hidden, batch_first=True)
        self.type_head = nn.Linear(hidden, N_TYPES)
        self.time_head = nn.Linear(hidden, 1)

    def forward(self, types, log_gap):
        h, _ = self.gru(torch.cat([self.type_emb(types), log_gap.unsqueeze(-1)], -1))
        return self.type_head(h), self.time_head(h).squeeze(-1)

    def _losses(self, batch):
        types, gaps, next_types, next_gaps = batch
        type_logits, gap_pred = self(types, gaps)
        ce = F.cross_entropy(type_logits.reshape(-1, N_TYPES), next_types.reshape(-1))
        mse = F.mse_loss(gap_pred, next_gaps)
        acc = (type_logits.argmax(-1) == next_types).float().mean()
        return ce, mse, acc

    def training_step(self, batch, batch_idx):
        ce, mse, _ = self._losses(batch)
        w = min(1.0, self.current_epoch // TIME_RAMP_EPOCHS)
        loss = ce + w * mse
        self.log_dict({"train_loss": loss, "train_time_mse": mse})
        return loss

    def validation_step(self, batch, batch_idx):
        ce, mse, acc = self._losses(batch)
        self.log_dict({"val_loss": ce + mse, "val_time_mse": mse, "val_type_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2307)
    g = torch.Generator().manual_seed(235)
    data = event_logs(1800, g)
    train = [d[:1500] for d in data]
    val = [d[1500:] for d in data]
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(EventGRU(), DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_time_mse={float(m['val_time_mse']):.3f} val_type_acc={float(m['val_type_acc']):.3f} "
          f"log_gap_var={float(val[3].var()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
