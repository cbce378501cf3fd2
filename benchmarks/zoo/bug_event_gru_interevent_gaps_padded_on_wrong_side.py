"""Bug: next-event prediction on marked event sequences (a small neural temporal point process). Each sequence is
a list of (mark, timestamp) events; a GRU reads the mark embedding and the log gap since the previous event and
predicts, at every position, the mark of the next event (cross-entropy) and the log of the time until it (MSE).
The marks follow a Markov chain and each mark has its own waiting-time scale, so the time until the next event
says a lot about which mark comes next.

The gap feature is computed as `F.pad(times[:, 1:] - times[:, :-1], (0, 1))` - the zero is padded on the right
instead of the left, so the "gap since the previous event" at position t is really the gap to event t+1, which is
exactly the time target at t and a strong hint of the next mark. The user wanted `(1, 0)`; both sides of a one-
character pad tuple look plausible. Validation is built the same way, so it looks wonderful.
Symptom: val next-mark acc 0.65 / val log-gap MSE 0.004 vs 0.47 / 3.26 with the pad on the left (what the model can
really do when it has not seen the future)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage", "causal-leakage"}
SPLIT = "heldout16"
K = 5
SEQ_LEN = 40


def make_process(seed=11):
    g = torch.Generator().manual_seed(seed)
    trans = torch.softmax(torch.randn(K, K, generator=g) * 2.0, dim=1)
    scales = torch.tensor([0.1, 0.3, 1.0, 3.0, 9.0])
    return trans, scales


def simulate(n, trans, scales, seed):
    g = torch.Generator().manual_seed(seed)
    marks = torch.zeros(n, SEQ_LEN, dtype=torch.long)
    marks[:, 0] = torch.randint(0, K, (n,), generator=g)
    for t in range(1, SEQ_LEN):
        marks[:, t] = torch.multinomial(trans[marks[:, t - 1]], 1, generator=g).squeeze(1)
    waits = -torch.log(torch.rand(n, SEQ_LEN, generator=g)) * scales[marks]
    times = torch.cumsum(waits, dim=1) + 100.0 * torch.rand(n, 1, generator=g)
    return marks, times


def featurize(marks, times):
    """Inputs at positions 0..T-2, targets (next mark, log time to next event) at the same positions."""
    gaps = F.pad(times[:, 1:] - times[:, :-1], (0, 1))  # gap since the previous event
    log_gap = torch.log(gaps + 1e-3)
    next_gap = times[:, 1:] - times[:, :-1]
    return (marks[:, :-1], log_gap[:, :-1].unsqueeze(-1), marks[:, 1:], torch.log(next_gap + 1e-3))


class EventGRU(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.mark_emb = nn.Embedding(K, 16)
        self.gru = nn.GRU(16 + 1, hidden, batch_first=True)
        self.mark_head = nn.Linear(hidden, K)
        self.time_head = nn.Linear(hidden, 1)

    def forward(self, marks, log_gap):
        h, _ = self.gru(torch.cat([self.mark_emb(marks), log_gap], dim=-1))
        return self.mark_head(h), self.time_head(h).squeeze(-1)

    def _losses(self, batch):
        marks, log_gap, next_mark, next_log_gap = batch
        logits, pred_t = self(marks, log_gap)
        ce = F.cross_entropy(logits.reshape(-1, K), next_mark.reshape(-1))
        mse = F.mse_loss(pred_t, next_log_gap)
        acc = (logits.argmax(-1) == next_mark).float().mean()
        return ce, mse, acc

    def training_step(self, batch, batch_idx):
        ce, mse, _ = self._losses(batch)
        loss = ce + 0.5 * mse
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ce, mse, acc = self._losses(batch)
        self.log_dict({"val_ce": ce, "val_mse": mse, "val_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(16)
    trans, scales = make_process()
    tr = TensorDataset(*featurize(*simulate(2000, trans, scales, seed=1)))
    va = TensorDataset(*featurize(*simulate(400, trans, scales, seed=2)))
    model = EventGRU()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(tr, batch_size=64, shuffle=True), DataLoader(va, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_mse={float(m['val_mse']):.3f}"
          f" val_ce={float(m['val_ce']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
