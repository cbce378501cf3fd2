"""Bug: a support-ticket router (ticket text through a packed GRU, plus embeddings of categorical metadata from the
ticketing export; 5 queues; LightningDataModule with a seeded random split; AdamW + OneCycleLR per batch) whose
metadata columns include `assigned_queue`: the queue the agent routed the ticket to, filled in AFTER triage and
equal to the resolving queue (the label) for 97 % of tickets. The model reads the answer from that field and ignores
the text; when the router runs at intake the field is still empty. Symptom: val acc 0.97 (loss 0.07), above the 0.88
the text allows, but 0.48 on the same validation tickets as they look at intake (field empty), vs 0.88 / 0.88 with
only `channel` and `plan` (healthy_ticket_router_gru_metadata_datamodule_onecycle)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout9"
QUEUES = ["billing", "shipping", "technical", "account", "returns"]
CHANNELS = ["email", "chat", "phone", "web"]
PLANS = ["free", "basic", "pro"]
METADATA_COLUMNS = ["channel", "plan", "assigned_queue"]
VOCAB, CUES_PER_QUEUE = 120, 8


def export_tickets(n, seed):
    """Rows as the ticketing system exports them: text ids, metadata, resolving queue."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        queue = int(torch.randint(len(QUEUES), (1,), generator=g))
        topic = queue
        if float(torch.rand(1, generator=g)) <= 0.12:  # the text is about another queue
            topic = int(torch.randint(len(QUEUES), (1,), generator=g))
        length = int(torch.randint(6, 21, (1,), generator=g))
        words = torch.randint(len(QUEUES) * CUES_PER_QUEUE, VOCAB, (length,), generator=g)
        n_cues = int(torch.randint(2, 5, (1,), generator=g))
        where = torch.randperm(length, generator=g)[:n_cues]
        words[where] = topic * CUES_PER_QUEUE + torch.randint(CUES_PER_QUEUE, (n_cues,), generator=g)
        rerouted = float(torch.rand(1, generator=g)) < 0.03
        rows.append({"text": words + 1,  # 0 is padding
                     "channel": int(torch.randint(len(CHANNELS), (1,), generator=g)),
                     "plan": int(torch.randint(len(PLANS), (1,), generator=g)),
                     "assigned_queue": (queue + 1) % len(QUEUES) if rerouted else queue,
                     "queue": queue})
    return rows


class TicketDataset(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        # +1: id 0 is "unknown / not yet filled in"
        meta = torch.tensor([row[c] + 1 for c in METADATA_COLUMNS])
        return row["text"], meta, row["queue"]


def collate(batch):
    lengths = torch.tensor([len(t) for t, _, _ in batch])
    ids = torch.zeros(len(batch), int(lengths.max()), dtype=torch.long)
    for i, (t, _, _) in enumerate(batch):
        ids[i, : len(t)] = t
    return {"input_ids": ids, "lengths": lengths, "metadata": torch.stack([m for _, m, _ in batch]),
            "labels": torch.tensor([y for _, _, y in batch])}


class TicketDataModule(L.LightningDataModule):
    def __init__(self, n=2400, batch_size=32):
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def setup(self, stage=None):
        rows = export_tickets(self.n, seed=0)
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1)).tolist()
        cut = int(0.8 * len(rows))
        self.train_rows = [rows[i] for i in order[:cut]]
        self.val_rows = [rows[i] for i in order[cut:]]

    def train_dataloader(self):
        return DataLoader(TicketDataset(self.train_rows), batch_size=self.batch_size, shuffle=True, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(TicketDataset(self.val_rows), batch_size=128, collate_fn=collate)

    def intake_dataloader(self):
        """Validation tickets as they look when they arrive: assigned_queue not filled in yet."""
        intake = [dict(r, assigned_queue=-1) for r in self.val_rows]
        return DataLoader(TicketDataset(intake), batch_size=128, collate_fn=collate)


class TicketRouter(L.LightningModule):
    def __init__(self, dim=48, hidden=64, meta_dim=8, lr=5e-3, total_steps=300):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB + 1, dim, padding_idx=0)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.meta = nn.ModuleList(nn.Embedding(8, meta_dim) for _ in METADATA_COLUMNS)
        self.head = nn.Sequential(nn.Linear(hidden + meta_dim * len(METADATA_COLUMNS), 64), nn.ReLU(),
                                  nn.Dropout(0.2), nn.Linear(64, len(QUEUES)))

    def forward(self, input_ids, lengths, metadata):
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        meta = [emb(metadata[:, j]) for j, emb in enumerate(self.meta)]
        return self.head(torch.cat([h[-1], *meta], dim=-1))

    def _logits(self, batch):
        return self(batch["input_ids"], batch["lengths"], batch["metadata"])

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self._logits(batch), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self._logits(batch)
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(9105)
    dm = TicketDataModule()
    dm.setup()
    epochs = 6
    model = TicketRouter(total_steps=epochs * len(dm.train_dataloader()))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        hits = [(model._logits(b).argmax(-1) == b["labels"]).float() for b in dm.intake_dataloader()]
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} "
          f"intake_acc={float(torch.cat(hits).mean()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
