"""Bug: an Embedding + LSTM intent classifier ported from a Keras recipe (pre-padded token ids, head on `out[:, -1]`)
builds `nn.LSTM(dim, hidden)` without `batch_first=True` while feeding (batch, time, dim) tensors: the LSTM runs
along the batch axis, so `out[b, -1]` is the state after reading the LAST token of samples 0..b. Shapes still
line up; each prediction depends on the other samples of the batch and barely on the sample's own words.
Measured: val acc 0.412 (val loss 1.104, ln 3 = 1.099) vs 0.738 (0.762) with `batch_first=True`
(healthy_lstm_intent_classifier_prepadded)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout3"
VOCAB, PAD, MAX_LEN, INTENTS = 150, 0, 24, 3


def utterances(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, MAX_LEN), PAD, dtype=torch.long)
    labels = torch.zeros(n, dtype=torch.long)
    for k in range(n):
        length = int(torch.randint(5, MAX_LEN + 1, (1,), generator=g))
        words = torch.randint(1, VOCAB, (length,), generator=g)
        cues = torch.stack([((words > 30 * c) & (words <= 30 * c + 30)).sum() for c in range(INTENTS)]).float()
        label = int((cues + 0.1 * torch.rand(INTENTS, generator=g)).argmax())
        if torch.rand(1, generator=g) < 0.1:
            label = int(torch.randint(0, INTENTS, (1,), generator=g))
        ids[k, MAX_LEN - length:] = words  # pre-padding
        labels[k] = label
    return TensorDataset(ids, labels)


class IntentLSTM(L.LightningModule):
    def __init__(self, dim=48, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.lstm = nn.LSTM(dim, hidden)  # BUG: batch_first left at False, but the batches are (B, T, dim)
        self.head = nn.Linear(hidden, INTENTS)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(out[:, -1])

    def training_step(self, batch, batch_idx):
        ids, y = batch
        loss = F.cross_entropy(self(ids), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, y = batch
        logits = self(ids)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(-1) == y).float().mean()})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(909)
    train = DataLoader(utterances(2400, 0), batch_size=32, shuffle=True)
    val = DataLoader(utterances(400, 1), batch_size=200)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False, gradient_clip_val=1.0,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(IntentLSTM(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
