"""Bug: implicit-feedback matrix factorisation with the BPR loss (user/item embeddings + item bias) on a synthetic
interaction matrix: 400 users x 300 items, each user interacts with ~20 items drawn from a hidden 5-d taste
model (seeded torch.Generator). Every user's last interaction is held out; training triples (user, positive,
sampled negative) are resampled each epoch; validation reports the BPR loss and pairwise accuracy on
(user, held-out item, sampled negative) triples.

`sample_eval_candidates()` returns `(users, negatives, held_out)` (negatives second, as in the evaluation
library it was copied from), and the validation dataset is built with `bpr_triples(*sample_eval_candidates(...))`,
whose signature is `(users, positives, negatives)`. The validation triples are therefore reversed: the model is
scored on ranking a random item above the held-out one. Nothing crashes, training loss falls as usual, but
validation loss climbs from ln 2 as the model gets better, so checkpointing / early stopping on val_loss keeps
the untrained model. Symptom: after 10 epochs train loss 0.075, val loss 2.994 and val pairwise accuracy 0.095;
with the triples in the right order (same training) val loss 0.252 and pairwise accuracy 0.905."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout24"
N_USERS, N_ITEMS = 400, 300


def interactions(g):
    taste, profile = torch.randn(N_USERS, 5, generator=g), torch.randn(N_ITEMS, 5, generator=g)
    probs = torch.softmax(1.5 * taste @ profile.T, 1)
    return torch.multinomial(probs, 20, replacement=False, generator=g)


def sample_negatives(users, seen, g):
    negatives = torch.randint(0, N_ITEMS, (len(users),), generator=g)
    clash = seen[users, negatives]
    while clash.any():
        negatives[clash] = torch.randint(0, N_ITEMS, (int(clash.sum()),), generator=g)
        clash = seen[users, negatives]
    return negatives


def sample_eval_candidates(held_out, seen, g):
    users = torch.arange(N_USERS)
    return users, sample_negatives(users, seen, g), held_out


def bpr_triples(users, positives, negatives):
    return TensorDataset(users, positives, negatives)


class TrainTriples(torch.utils.data.Dataset):
    def __init__(self, train_items, seen, seed):
        self.users = torch.arange(N_USERS).repeat_interleave(train_items.shape[1])
        self.positives, self.seen = train_items.reshape(-1), seen
        self.g = torch.Generator().manual_seed(seed)
        self.negatives = sample_negatives(self.users, seen, self.g)

    def resample(self):
        self.negatives = sample_negatives(self.users, self.seen, self.g)

    def __len__(self):
        return len(self.users)

    def __getitem__(self, i):
        return self.users[i], self.positives[i], self.negatives[i]


class BPRMF(L.LightningModule):
    def __init__(self, dim=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.user_emb = nn.Embedding(N_USERS, dim)
        self.item_emb = nn.Embedding(N_ITEMS, dim)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def score(self, users, items):
        return (self.user_emb(users) * self.item_emb(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    def _diff(self, batch):
        users, positives, negatives = batch
        return self.score(users, positives) - self.score(users, negatives)

    def training_step(self, batch, batch_idx):
        loss = F.softplus(-self._diff(batch)).mean()
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        diff = self._diff(batch)
        self.log("val_loss", F.softplus(-diff).mean())
        self.log("val_pair_acc", (diff > 0).float().mean())

    def on_train_epoch_end(self):
        self.trainer.train_dataloader.dataset.resample()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def main():
    L.seed_everything(2407)
    g = torch.Generator().manual_seed(3)
    items = interactions(g)
    seen = torch.zeros(N_USERS, N_ITEMS, dtype=torch.bool)
    seen[torch.arange(N_USERS)[:, None], items] = True
    train_set = TrainTriples(items[:, :-1], seen, seed=4)
    val_set = bpr_triples(*sample_eval_candidates(items[:, -1], seen, g))
    model = BPRMF()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_set, batch_size=256, shuffle=True), DataLoader(val_set, batch_size=400))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss_epoch']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"val_pair_acc={float(m['val_pair_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
