"""Bug: click-through prediction with embeddings of categorical ids (user, item, publisher, hour-of-day) on a
synthetic impression log of 12 000 rows (600 users, 400 items, 30 publishers, 24 hours) with a hidden user x
item affinity plus publisher and hour effects and heavy label noise (seeded torch.Generator). A
LightningDataModule builds the splits and a field-embedding model with a pairwise-interaction (FM) term and a
small MLP predicts the click, BCE-with-logits, AUROC on validation.

`ClickLogDataModule._subsample(frac, seed)` draws a random subset of the log with its own generator, and setup()
calls it twice: `_subsample(0.8, seed)` for train and `_subsample(0.2, seed + 1)` for validation. The two draws
are independent, so about 80 % of the validation impressions are also training impressions. The id embeddings
memorise them and validation AUROC keeps climbing while the honest metric does not. Symptom: val AUROC 0.714
while a clean, disjoint test log gives 0.577; with the fix (one permutation, disjoint slices) val AUROC is 0.610
and test 0.577, i.e. validation tells the truth, and model selection on val stops rewarding memorisation."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional.classification import binary_auroc

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout24"
CARDINALITIES = (600, 400, 30, 24)


def click_log(n, g, hidden):
    user_vecs, item_vecs, pub_bias, hour_bias = hidden
    fields = torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDINALITIES], 1)
    logit = (user_vecs[fields[:, 0]] * item_vecs[fields[:, 1]]).sum(1)
    logit = logit + pub_bias[fields[:, 2]] + hour_bias[fields[:, 3]]
    clicks = torch.bernoulli(torch.sigmoid(logit - 0.5), generator=g)
    return fields, clicks


class ClickLogDataModule(L.LightningDataModule):
    def __init__(self, fields, clicks, seed=0, batch_size=128):
        super().__init__()
        self.fields, self.clicks, self.seed, self.batch_size = fields, clicks, seed, batch_size

    def _subsample(self, frac, seed):
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.clicks), generator=g)[: int(frac * len(self.clicks))]
        return TensorDataset(self.fields[idx], self.clicks[idx])

    def setup(self, stage=None):
        self.train_set = self._subsample(0.8, self.seed)
        self.val_set = self._subsample(0.2, self.seed + 1)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=1200)


class FieldFM(L.LightningModule):
    def __init__(self, dim=8, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = nn.ModuleList(nn.Embedding(c, dim) for c in CARDINALITIES)
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=0.05)
        self.mlp = nn.Sequential(nn.Linear(dim * len(CARDINALITIES), 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, fields):
        embs = torch.stack([emb(fields[:, i]) for i, emb in enumerate(self.embeddings)], 1)
        fm = 0.5 * (embs.sum(1).pow(2) - embs.pow(2).sum(1)).sum(1)
        return fm + self.mlp(embs.flatten(1)).squeeze(1)

    def training_step(self, batch, batch_idx):
        fields, clicks = batch
        loss = F.binary_cross_entropy_with_logits(self(fields), clicks)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        fields, clicks = batch
        logits = self(fields)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, clicks))
        self.log("val_auroc", binary_auroc(logits, clicks.long()))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)


def main():
    L.seed_everything(2405)
    g = torch.Generator().manual_seed(31)
    hidden = (torch.randn(CARDINALITIES[0], 4, generator=g) * 0.8, torch.randn(CARDINALITIES[1], 4, generator=g) * 0.8,
              0.5 * torch.randn(CARDINALITIES[2], generator=g), 0.3 * torch.randn(CARDINALITIES[3], generator=g))
    fields, clicks = click_log(12000, g, hidden)
    test_fields, test_clicks = click_log(3000, g, hidden)
    model = FieldFM()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=ClickLogDataModule(fields, clicks, seed=24))
    model.eval()
    with torch.no_grad():
        test_auroc = binary_auroc(model(test_fields), test_clicks.long())
    print(f"SYMPTOM val_auroc={float(trainer.callback_metrics['val_auroc']):.3f} test_auroc={float(test_auroc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
