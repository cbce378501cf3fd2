"""Bug: masked-LM pre-training of a small BERT-like encoder written in torch (dict batches with `input_ids`,
`attention_mask`, `labels` = -100 except at the 15 % masked positions, the loss computed inside the model as in
HuggingFace). The schedule is the usual linear warm-up then linear decay, written as a LambdaLR stepped every
optimizer step, but `num_training_steps` was set to `len(train_loader)`, the steps of *one* epoch, while the
Trainer runs eight. The learning rate reaches 0 at the end of epoch 1 and the lambda's `max(0.0, ...)` keeps it
there: seven epochs run, log losses, and change nothing.
Symptom: val masked-token acc 0.15 / val loss 3.09 vs 0.71 / 0.93 with `num_training_steps = len(loader) *
max_epochs`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout10"
N_WORDS, SEQ = 30, 24
PAD, MASK, CLS = 30, 31, 32
VOCAB = 33
MAX_EPOCHS = 8


def corpus(n, seed):
    """Sequences from a first-order chain where each word has three likely successors."""
    g0 = torch.Generator().manual_seed(99)
    succ = torch.randint(0, N_WORDS, (N_WORDS, 3), generator=g0)
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, SEQ, dtype=torch.long)
    x[:, 0] = CLS
    x[:, 1] = torch.randint(0, N_WORDS, (n,), generator=g)
    for t in range(2, SEQ):
        x[:, t] = succ[x[:, t - 1], torch.randint(0, 3, (n,), generator=g)]
    lengths = torch.randint(SEQ // 2, SEQ + 1, (n,), generator=g)
    x[torch.arange(SEQ)[None, :] >= lengths[:, None]] = PAD
    return x


class MLMData(Dataset):
    """Masks 15 % of the real words on the fly: 80 % [MASK], 10 % random word, 10 % unchanged."""

    def __init__(self, seqs, seed=None):
        self.seqs, self.seed = seqs, seed

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed + i) if self.seed is not None else None
        ids = self.seqs[i].clone()
        word = ids < N_WORDS
        pick = (torch.rand(SEQ, generator=g) < 0.15) & word
        labels = torch.where(pick, ids, torch.full_like(ids, -100))
        r = torch.rand(SEQ, generator=g)
        ids[pick & (r < 0.8)] = MASK
        rand_pos = pick & (r >= 0.8) & (r < 0.9)
        ids[rand_pos] = torch.randint(0, N_WORDS, (int(rand_pos.sum()),), generator=g)
        return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class TinyBertForMaskedLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(SEQ, d)
        self.ln = nn.LayerNorm(d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.mlm_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, VOCAB))

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.ln(self.tok(input_ids) + self.pos.weight[: input_ids.shape[1]])
        logits = self.mlm_head(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        loss = None if labels is None else F.cross_entropy(logits.view(-1, VOCAB), labels.view(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitMLM(L.LightningModule):
    def __init__(self, num_training_steps, lr=3e-3, warmup_steps=20):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyBertForMaskedLM()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        keep = batch["labels"] != -100
        acc = (out["logits"].argmax(-1) == batch["labels"])[keep].float().mean()
        self.log_dict({"val_loss": out["loss"], "val_mlm_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        warm, total = self.hparams.warmup_steps, self.hparams.num_training_steps

        def linear_warmup_decay(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(17)
    train_loader = DataLoader(MLMData(corpus(2400, 1)), batch_size=48, shuffle=True)
    val_loader = DataLoader(MLMData(corpus(400, 2), seed=0), batch_size=200)
    model = LitMLM(num_training_steps=len(train_loader))  # BUG: should be len(train_loader) * MAX_EPOCHS
    trainer = L.Trainer(
        max_epochs=MAX_EPOCHS,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="tiny_bert_mlm"),
        callbacks=lightning_sanity.default_callbacks() + [LearningRateMonitor("step")],
        enable_progress_bar=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, train_loader, val_loader)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_mlm_acc={m['val_mlm_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
