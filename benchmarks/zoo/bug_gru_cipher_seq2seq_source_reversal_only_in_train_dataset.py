"""Bug: a GRU encoder-decoder without attention (Sutskever-style) learns a letter-substitution cipher with teacher
forcing: dict batches `input_ids`/`attention_mask`/`decoder_input_ids`/`labels`, the decoder input is the target
shifted right behind BOS, loss inside the model, gradient clipping, Adam + CosineAnnealingWarmRestarts. Following
the paper, the source is fed reversed ("it makes the first target tokens close to the first source tokens"),
which the user implemented as a `reverse_source` flag of the Dataset - and turned on when building the training
set only, because the validation set is built in another function written before the trick was added. At
validation the encoder reads every sentence in the opposite order from anything it saw in training; the
teacher-forced val loss is far worse than the training loss from the first epoch and climbs as training sharpens.

Symptom (measured): train loss 0.06 but val loss 4.1 / val token acc 0.17 vs val loss 0.05 / val token acc 0.99
when the validation dataset is also built with `reverse_source=True`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout13"

PAD, BOS, EOS, OFF, N_LET = 0, 1, 2, 3, 20
VOCAB = OFF + N_LET


class CipherDataset(Dataset):
    def __init__(self, n, seed, reverse_source=False):
        g = torch.Generator().manual_seed(seed)
        key = torch.randperm(N_LET, generator=torch.Generator().manual_seed(0))  # the cipher, shared by all splits
        self.pairs = []
        for _ in range(n):
            k = int(torch.randint(5, 10, (1,), generator=g))
            plain = torch.randint(0, N_LET, (k,), generator=g)
            src = plain + OFF
            tgt = key[plain] + OFF
            if reverse_source:
                src = src.flip(0)
            self.pairs.append((src, tgt))

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        src, tgt = self.pairs[i]
        return {"input_ids": src, "labels": torch.cat([tgt, torch.tensor([EOS])])}


def collate(batch):
    ts = max(len(b["input_ids"]) for b in batch)
    tt = max(len(b["labels"]) for b in batch)
    ids = torch.full((len(batch), ts), PAD)
    labels = torch.full((len(batch), tt), -100)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
        labels[i, : len(b["labels"])] = b["labels"]
    dec_in = torch.cat([torch.full((len(batch), 1), BOS), labels[:, :-1]], 1).masked_fill(
        torch.cat([torch.zeros(len(batch), 1, dtype=torch.bool), labels[:, :-1] == -100], 1), PAD)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "decoder_input_ids": dec_in, "labels": labels}


class GRUSeq2Seq(nn.Module):
    def __init__(self, d=64, hidden=192):
        super().__init__()
        self.src_embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.encoder = nn.GRU(d, hidden, batch_first=True)
        self.decoder = nn.GRU(d, hidden, batch_first=True)
        self.lm_head = nn.Linear(hidden, VOCAB)

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels=None):
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.src_embed(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)
        out, _ = self.decoder(self.tgt_embed(decoder_input_ids), h)
        logits = self.lm_head(out)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class CipherModule(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = GRUSeq2Seq()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        mask = batch["labels"] != -100
        acc = ((out["logits"].argmax(-1) == batch["labels"]) & mask).sum() / mask.sum()
        self.log("val_loss", out["loss"])
        self.log("val_token_acc", acc)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=1e-4)
        return {"optimizer": opt, "lr_scheduler": sched}


def build_train_set():
    return CipherDataset(4500, seed=11, reverse_source=True)


def build_val_set():
    return CipherDataset(600, seed=12)


if __name__ == "__main__":
    L.seed_everything(4242)
    train = DataLoader(build_train_set(), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(build_val_set(), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CipherModule(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={float(m['train_loss']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
