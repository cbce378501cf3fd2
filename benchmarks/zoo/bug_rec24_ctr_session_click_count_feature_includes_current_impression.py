"""Bug: click-through prediction on a synthetic impression log (400 users, 300 items, sessions of 6 impressions,
click probability from a hidden user x item affinity plus a position bias, seeded torch.Generator). The model is
the usual embedding MLP: user and item id embeddings concatenated with two dense "session engagement" features
from the sessionization job, trained with BCE-with-logits and evaluated with AUROC on a held-out set of sessions.

The engagement features (`session_clicks`, the number of clicks in the session, and `session_ctr`) are computed
with a `groupby(session).sum()` over the whole session, so for every impression they include its own click
(and the clicks of later impressions). The count therefore nearly determines the label (a session with zero
clicks means label 0, a session with six means label 1, and the own click is always in the sum). Training and
validation both carry the leaked feature, so the loss falls fast and validation AUROC looks good. At serving
time only clicks from earlier impressions exist. Symptom: val AUROC 0.733 with the leak, but 0.516 (chance) on a
test set where the feature is computed as it is at serving time (clicks before the impression); the fixed version
(cumulative count of earlier clicks, `cumsum - click`) gets val 0.599 and serving-time test 0.592."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import binary_auroc

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout24"
N_USERS, N_ITEMS, SESSION_LEN = 400, 300, 6


def impression_log(n_sessions, g, user_vecs, item_vecs):
    users = torch.randint(0, N_USERS, (n_sessions,), generator=g).repeat_interleave(SESSION_LEN)
    items = torch.randint(0, N_ITEMS, (n_sessions * SESSION_LEN,), generator=g)
    position = torch.arange(SESSION_LEN).repeat(n_sessions)
    affinity = (user_vecs[users] * item_vecs[items]).sum(1) - 0.35 * position
    clicks = torch.bernoulli(torch.sigmoid(affinity - 0.3), generator=g)
    return users, items, position, clicks


def engagement_features(clicks, serving_time):
    per_session = clicks.view(-1, SESSION_LEN)
    if serving_time:
        counts = per_session.cumsum(1) - per_session
    else:
        counts = per_session.sum(1, keepdim=True).expand_as(per_session)
    seen = torch.arange(1, SESSION_LEN + 1).float().expand_as(per_session)
    return torch.stack([counts.reshape(-1) / SESSION_LEN, (counts / seen).reshape(-1)], 1)


def as_dataset(log, serving_time=False):
    users, items, position, clicks = log
    dense = torch.cat([engagement_features(clicks, serving_time), position[:, None].float() / SESSION_LEN], 1)
    return TensorDataset(users, items, dense, clicks)


class CTRModel(L.LightningModule):
    def __init__(self, dim=16, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.user_emb = nn.Embedding(N_USERS, dim)
        self.item_emb = nn.Embedding(N_ITEMS, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim + 3, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, users, items, dense):
        return self.mlp(torch.cat([self.user_emb(users), self.item_emb(items), dense], 1)).squeeze(1)

    def training_step(self, batch, batch_idx):
        users, items, dense, clicks = batch
        loss = F.binary_cross_entropy_with_logits(self(users, items, dense), clicks)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        users, items, dense, clicks = batch
        logits = self(users, items, dense)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, clicks))
        self.log("val_auroc", binary_auroc(logits, clicks.long()))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def main():
    L.seed_everything(2401)
    g = torch.Generator().manual_seed(24)
    user_vecs, item_vecs = torch.randn(N_USERS, 4, generator=g), torch.randn(N_ITEMS, 4, generator=g)
    train = as_dataset(impression_log(2000, g, user_vecs, item_vecs))
    val = as_dataset(impression_log(400, g, user_vecs, item_vecs))
    test = as_dataset(impression_log(400, g, user_vecs, item_vecs), serving_time=True)
    model = CTRModel()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=2400))
    model.eval()
    with torch.no_grad():
        users, items, dense, clicks = test.tensors
        test_auroc = binary_auroc(model(users, items, dense), clicks.long())
    print(f"SYMPTOM val_auroc={float(trainer.callback_metrics['val_auroc']):.3f} "
          f"serving_test_auroc={float(test_auroc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
