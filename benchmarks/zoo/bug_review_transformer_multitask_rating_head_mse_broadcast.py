"""Bug: multi-task product-review model over token ids: a small Transformer encoder (batch_first, padding mask,
masked mean pool) with two heads, a 3-way sentiment classifier and a star-rating regressor (1-5 stars, standardised).
The rating head is `nn.Linear(d, 1)`, so its output is (B, 1), while the star targets are (B,). `F.mse_loss(pred, y)`
broadcasts the pair to (B, B) - every prediction is compared with every target of the batch - and only emits a
UserWarning that scrolls past in the log. The regression head learns to predict the batch mean; the classification
head is unaffected, so the run looks healthy. Symptom: val rating MAE 1.21 stars (predicting the training mean gives
1.21) vs 0.57 with `pred.squeeze(-1)`; sentiment val acc 0.83 vs 0.85."""

import warnings

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout18"
VOCAB, MAXLEN, PAD = 400, 32, 0
# token ids 1-20: strong positive .. strong negative cue words (weight +2 .. -2), the rest filler
CUE_WEIGHT = torch.linspace(2.0, -2.0, 20)


def make_reviews(n, g):
    lengths = torch.randint(10, MAXLEN + 1, (n,), generator=g)
    ids = torch.randint(21, VOCAB, (n, MAXLEN), generator=g)
    n_cues = torch.randint(1, 5, (n,), generator=g)
    taste = torch.randn(n, generator=g)
    score = torch.zeros(n)
    for i in range(n):
        pos = torch.randperm(int(lengths[i]), generator=g)[: int(n_cues[i])]
        lean = 0.0 if float(taste[i]) < 0 else 1.0
        cue = torch.multinomial(torch.softmax(lean * CUE_WEIGHT + (1 - lean) * -CUE_WEIGHT, 0), len(pos),
                                replacement=True, generator=g)
        ids[i, pos] = cue + 1
        score[i] = CUE_WEIGHT[cue].mean()
        ids[i, int(lengths[i]):] = PAD
    stars = (3 + score + 0.4 * torch.randn(n, generator=g)).clamp(1, 5).round()
    sentiment = torch.where(stars <= 2, 0, torch.where(stars == 3, 1, 2))
    return ids, sentiment, stars


class ReviewMultiTask(L.LightningModule):
    def __init__(self, star_mean, star_std, d=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(MAXLEN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.sentiment_head = nn.Linear(d, 3)
        self.rating_head = nn.Linear(d, 1)

    def forward(self, ids):
        pad = ids == PAD
        h = self.emb(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        h = self.encoder(h, src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        pooled = (h * keep).sum(1) / keep.sum(1)
        return self.sentiment_head(pooled), self.rating_head(pooled)

    def _losses(self, batch):
        ids, sentiment, stars = batch
        logits, rating = self(ids)
        target = (stars - self.hparams.star_mean) / self.hparams.star_std
        return logits, rating, F.cross_entropy(logits, sentiment), F.mse_loss(rating, target)

    def training_step(self, batch, batch_idx):
        _, _, ce, mse = self._losses(batch)
        loss = ce + mse
        self.log_dict({"train_ce": ce, "train_mse": mse, "train_loss": loss})
        return loss

    def validation_step(self, batch, batch_idx):
        logits, rating, ce, mse = self._losses(batch)
        stars_hat = rating.squeeze(-1) * self.hparams.star_std + self.hparams.star_mean
        self.log_dict({"val_loss": ce + mse, "val_acc": (logits.argmax(-1) == batch[1]).float().mean(),
                       "val_mae": (stars_hat - batch[2]).abs().mean()}, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", ".*does_not_use_mask.*")
    L.seed_everything(7)
    g = torch.Generator().manual_seed(7)
    tr = make_reviews(3000, g)
    va = make_reviews(600, g)
    mean, std = float(tr[2].mean()), float(tr[2].std())
    model = ReviewMultiTask(mean, std)
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="review_multitask"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(*tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*va), batch_size=256))
    baseline = float((va[2] - mean).abs().mean())
    print(f"SYMPTOM val_mae={float(trainer.callback_metrics['val_mae']):.3f} mean_baseline_mae={baseline:.3f} "
          f"val_acc={float(trainer.callback_metrics['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
