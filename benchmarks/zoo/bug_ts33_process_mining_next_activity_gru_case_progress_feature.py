"""Bug: predictive process monitoring. A GRU reads the event log of an insurance-claim case (activity id plus numeric
event features) and predicts the next activity at every prefix, including the end-of-case marker. Cases are
register -> check -> (rework -> check) x k -> approve | reject -> archive -> END, where the number of rework loops k
(0..3) is not known while the case runs, and claims with k >= 2 end in reject. The feature builder adds a
"case progress" feature, `(i + 1) / len(case)`, the position of the event normalised by the case length. The case
length is only known once the case is closed, so the feature tells the model how many events are still to come:
after a `check` it says whether another rework follows, and it reveals approve/reject and END.

Why training still "works": the loss falls smoothly and validation cases (simulated separately) score as well as
training cases, because validation logs are complete historical cases that carry the same feature. Measured against
the fixed version (progress replaced by `log1p(i)`, the position known at prediction time): val next-activity
accuracy 1.000 with the bug vs 0.892 fixed; val loss 0.005 vs 0.206 (train loss 0.004 vs 0.191)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout33"
ACTIVITIES = ["<pad>", "register", "check", "rework", "approve", "reject", "archive", "END"]
A = {name: i for i, name in enumerate(ACTIVITIES)}


def simulate_cases(n, seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(n):
        k = int(torch.randint(0, 4, (1,), generator=g))
        acts = ["register", "check"] + ["rework", "check"] * k
        acts += ["reject" if k >= 2 else "approve", "archive", "END"]
        gaps = -torch.log(torch.rand(len(acts), generator=g))  # exponential waiting times, in days
        cases.append(([A[a] for a in acts], gaps))
    return cases


def featurize(cases):
    rows = []
    for acts, gaps in cases:
        n = len(acts) - 1  # the END marker is only ever a target
        elapsed = torch.cumsum(gaps[:n], 0)
        progress = torch.arange(1, n + 1, dtype=torch.float32) / len(acts)
        num = torch.stack([torch.log1p(elapsed), torch.log1p(gaps[:n]), progress], -1)
        rows.append({"activity": torch.tensor(acts[:n]), "numeric": num, "labels": torch.tensor(acts[1:])})
    return rows


def collate(rows):
    t = max(len(r["activity"]) for r in rows)
    act = torch.zeros(len(rows), t, dtype=torch.long)
    num = torch.zeros(len(rows), t, 3)
    labels = torch.full((len(rows), t), -100)
    for i, r in enumerate(rows):
        n = len(r["activity"])
        act[i, :n], num[i, :n], labels[i, :n] = r["activity"], r["numeric"], r["labels"]
    return {"activity": act, "numeric": num, "labels": labels}


class NextActivityGRU(L.LightningModule):
    def __init__(self, d=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(len(ACTIVITIES), d)
        self.num = nn.Linear(3, d)
        self.gru = nn.GRU(d, 64, batch_first=True)
        self.head = nn.Linear(64, len(ACTIVITIES))

    def forward(self, activity, numeric):
        h, _ = self.gru(self.emb(activity) + self.num(numeric))
        return self.head(h)

    def _step(self, batch):
        logits = self(batch["activity"], batch["numeric"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
        keep = batch["labels"] != -100
        acc = (logits.argmax(-1) == batch["labels"])[keep].float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3305)
    train = featurize(simulate_cases(1500, seed=10))
    val = featurize(simulate_cases(400, seed=11))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(NextActivityGRU(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=100, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
