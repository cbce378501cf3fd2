"""Bug: session-based next-item recommendation (GRU4Rec-style) on synthetic browsing sessions: 150 items, each
session of 12 clicks walks a sparse Markov chain (every item has 4 likely successors), seeded torch.Generator.
At every position the model predicts the next item with full softmax cross-entropy; validation uses held-out
sessions and reports next-item loss and hit@10.

To give the GRU a "session intent" signal, the step input is the item embedding concatenated with the mean of
the session's item embeddings, `emb.mean(1, keepdim=True).expand(...)`. That mean is taken over the whole
session, so the input at position t contains the items at t+1 ... t+11, including the very item it must
predict. The GRU learns to lean on the bag of items in the session, training and validation loss fall below what
the Markov chain allows, and hit@10 looks excellent. At serving time the future clicks are not there.
Symptom: val hit@10 0.922 with the leak, but only 0.594 when the same model is served with the intent computed
over the prefix (as it would be online); the fixed version (cumulative prefix mean) gets val hit@10 0.899 and the
same 0.899 when served."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout24"
N_ITEMS, SESSION_LEN = 150, 12


def browsing_sessions(n, g, successors):
    state = torch.randint(0, N_ITEMS, (n,), generator=g)
    clicks = [state]
    for _ in range(SESSION_LEN - 1):
        pick = torch.randint(0, successors.shape[1], (n,), generator=g)
        jump = torch.rand(n, generator=g) < 0.1
        state = torch.where(jump, torch.randint(0, N_ITEMS, (n,), generator=g), successors[state, pick])
        clicks.append(state)
    return torch.stack(clicks, 1)


def prefix_mean(emb):
    steps = torch.arange(1, emb.shape[1] + 1, device=emb.device, dtype=emb.dtype)[None, :, None]
    return emb.cumsum(1) / steps


class SessionGRU(L.LightningModule):
    def __init__(self, dim=48, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.item_emb = nn.Embedding(N_ITEMS, dim)
        self.gru = nn.GRU(2 * dim, 96, batch_first=True)
        self.head = nn.Linear(96, N_ITEMS)

    def forward(self, items, online=False):
        emb = self.item_emb(items)
        intent = prefix_mean(emb) if online else emb.mean(1, keepdim=True).expand_as(emb)
        out, _ = self.gru(torch.cat([emb, intent], -1))
        return self.head(out)

    def _step(self, sessions):
        logits = self(sessions[:, :-1])
        return logits, F.cross_entropy(logits.reshape(-1, N_ITEMS), sessions[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        _, loss = self._step(batch[0])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits, loss = self._step(batch[0])
        hits = (logits.topk(10, -1).indices == batch[0][:, 1:, None]).any(-1).float().mean()
        self.log("val_loss", loss)
        self.log("val_hit10", hits)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2403)
    g = torch.Generator().manual_seed(11)
    successors = torch.randint(0, N_ITEMS, (N_ITEMS, 4), generator=g)
    train, val = browsing_sessions(3000, g, successors), browsing_sessions(500, g, successors)
    model = SessionGRU()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=250))
    model.eval()
    with torch.no_grad():
        served = model(val[:, :-1], online=True)
    served_hit = (served.topk(10, -1).indices == val[:, 1:, None]).any(-1).float().mean()
    print(f"SYMPTOM val_hit10={float(trainer.callback_metrics['val_hit10']):.3f} served_hit10={float(served_hit):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
