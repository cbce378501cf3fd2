"""Bug: a churn model over customers' event logs (a GRU over event-type tokens, packed sequences, BCE with
logits). The label is "cancels in the 30 days after the prediction date (day 90)", but `build_history` keeps every
event in the export instead of only those before the cutoff: the sequence comparison was written
`day <= last_day` (the export's last day) where `day < CUTOFF_DAY` was meant. The post-cutoff activity is in the
inputs, including the `cancel_subscription` event itself for every churner. Data: 2400 synthetic customers whose
churn risk shows, noisily, in their pre-cutoff logins, support tickets and downgrades. Adam, CosineAnnealingLR per
epoch. Measured: val accuracy 1.00 / val loss 0.001 (too good to be true: knowing each customer's risk exactly
would give about 0.72) vs 0.70 / 0.59 with the history cut at day 90; the leaky model scored on honestly cut
validation logs: accuracy 0.50, loss 3.3."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout8"

EVENTS = ["<pad>", "login", "view", "purchase", "support_ticket", "downgrade", "payment_failed", "cancel_subscription"]
CUTOFF_DAY, LAST_DAY = 90, 120


def export_event_logs(n, seed):
    """The raw export: for each customer, (day, event id) pairs from day 0 to the export's last day."""
    g = torch.Generator().manual_seed(seed)
    logs, churned = [], []
    for _ in range(n):
        risk = float(torch.rand(1, generator=g))
        churn = float(torch.rand(1, generator=g)) < 0.05 + 0.9 * risk
        rates = torch.tensor([0.0, 0.6 - 0.45 * risk, 0.4, 0.15 - 0.12 * risk, 0.02 + 0.2 * risk,
                              0.005 + 0.08 * risk, 0.005 + 0.05 * risk, 0.0])
        churn_day = int(torch.randint(CUTOFF_DAY, LAST_DAY, (1,), generator=g)) if churn else LAST_DAY + 1
        days = torch.sort(torch.randint(0, LAST_DAY + 1, (int(torch.randint(30, 80, (1,), generator=g)),),
                                        generator=g)).values
        days = days[days < churn_day]
        events = torch.multinomial(rates, len(days), replacement=True, generator=g)
        if churn:
            days = torch.cat([days, torch.tensor([churn_day])])
            events = torch.cat([events, torch.tensor([EVENTS.index("cancel_subscription")])])
        logs.append((days, events))
        churned.append(float(churn))
    return logs, torch.tensor(churned)


def build_history(days, events, last_day=LAST_DAY):
    keep = days <= last_day
    return events[keep]


class ChurnDataset(Dataset):
    def __init__(self, logs, labels):
        self.seqs = [build_history(d, e) for d, e in logs]
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.seqs[i], self.labels[i]


def collate(rows):
    lengths = torch.tensor([max(1, len(r[0])) for r in rows])
    seqs = pad_sequence([r[0] if len(r[0]) else torch.tensor([0]) for r in rows], batch_first=True)
    return seqs, lengths, torch.stack([r[1] for r in rows])


class ChurnGRU(nn.Module):
    def __init__(self, n_events=len(EVENTS), dim=16, hidden=48):
        super().__init__()
        self.embed = nn.Embedding(n_events, dim, padding_idx=0)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, seqs, lengths):
        packed = pack_padded_sequence(self.embed(seqs), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return self.head(h[-1]).squeeze(-1)


class LitChurn(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = ChurnGRU()

    def forward(self, seqs, lengths):
        return self.model(seqs, lengths)

    def training_step(self, batch, batch_idx):
        seqs, lengths, y = batch
        loss = F.binary_cross_entropy_with_logits(self(seqs, lengths), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        seqs, lengths, y = batch
        logits = self(seqs, lengths)
        self.log_dict({"val_loss": F.binary_cross_entropy_with_logits(logits, y),
                       "val_acc": ((logits > 0).float() == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(8113)
    logs, labels = export_event_logs(2400, 0)
    train = DataLoader(ChurnDataset(logs[:2000], labels[:2000]), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(ChurnDataset(logs[2000:], labels[2000:]), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitChurn(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
