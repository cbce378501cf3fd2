"""Healthy: item recommender in the Mult-DAE style on a synthetic implicit-feedback log (600 users, 300 items, ~25
interactions per user from a low-rank taste model), evaluated leave-one-out. One interaction per user is held out
and removed from the training matrix before anything is fitted; training reconstructs the remaining history
(multinomial log-likelihood with input dropout) and validation feeds the same history-only row and asks for the
held-out item, so the answer is never in the input. Items the user already has in their history are masked out of
the ranking (they cannot be the held-out item, and would otherwise crowd the top 10), which is the standard
protocol. Validation: loss 3.58 and HR@10 0.71 (0.17 without the mask) against 0.033 for random ranking."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout33"
N_USERS, N_ITEMS = 600, 300


def interaction_log(g, rank=6, per_user=25):
    users = torch.randn(N_USERS, rank, generator=g)
    items = torch.randn(N_ITEMS, rank, generator=g)
    scores = users @ items.T / rank ** 0.5 * 4.0
    picks = torch.multinomial(torch.softmax(scores, 1), per_user, replacement=False, generator=g)
    full = torch.zeros(N_USERS, N_ITEMS)
    full.scatter_(1, picks, 1.0)
    heldout = picks[torch.arange(N_USERS), torch.randint(0, per_user, (N_USERS,), generator=g)]
    train = full.clone()
    train[torch.arange(N_USERS), heldout] = 0.0
    return full, train, heldout


class MultDAE(L.LightningModule):
    def __init__(self, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.drop = nn.Dropout(0.5)
        self.encoder = nn.Sequential(nn.Linear(N_ITEMS, hidden), nn.Tanh())
        self.decoder = nn.Linear(hidden, N_ITEMS)

    def forward(self, history):
        x = F.normalize(history, dim=1)
        return self.decoder(self.encoder(self.drop(x)))

    def training_step(self, batch, batch_idx):
        (history,) = batch
        loss = -(F.log_softmax(self(history), 1) * history).sum(1).mean()
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        history, target = batch
        logits = self(history).masked_fill(history > 0, -1e4)
        hit = (logits.topk(10, dim=1).indices == target[:, None]).any(1).float().mean()
        self.log("val_loss", F.cross_entropy(logits, target))
        self.log("val_hr10", hit)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def main():
    L.seed_everything(433)
    full, train, heldout = interaction_log(torch.Generator().manual_seed(433))
    model = MultDAE()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(train, heldout), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_hr10={m['val_hr10'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
