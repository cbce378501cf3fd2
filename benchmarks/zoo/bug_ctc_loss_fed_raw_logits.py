"""Bug: a `Wav2Vec2ForCTC`-style phoneme recogniser whose in-model loss hands `F.ctc_loss` the raw scores of the output
layer, transposed to `(T, B, C)` but never passed through `log_softmax` (the head used to end in a `nn.LogSoftmax`
module that was dropped when the decoding code was switched to read logits). `ctc_loss` treats its input as
log-probabilities without checking, so the "probabilities" of each frame need not sum to one and nothing pulls the
scores of the wrong symbols down: the loss is lowered by inflating the scores on the target's paths (it is unbounded
below), not by discriminating, and greedy decoding is poor. Otherwise the same script as
healthy_ctc_phoneme_recognizer_bigru (HF-style config, collate and output object, Conv1d + bidirectional GRU,
synthetic phoneme sequences of variable length, LightningDataModule, gradient accumulation, Adam +
ReduceLROnPlateau, clipping). Symptom: val phoneme error rate 0.443 vs 0.065 with `log_softmax` (val "CTC loss" 0.84
vs 0.23)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout6"
PHONES, FEAT = 12, 20
PROTOS = torch.randn(PHONES + 1, FEAT, generator=torch.Generator().manual_seed(0))
PROTOS[0] = 0.0  # silence


@dataclass
class PhonemeCTCConfig:
    input_dim: int = FEAT
    hidden_size: int = 64
    vocab_size: int = PHONES + 1
    pad_token_id: int = 0  # the CTC blank, as in Wav2Vec2's tokenizer
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = True


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


def utterances(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(4, 9, (1,), generator=g))
        phones = [int(torch.randint(1, PHONES + 1, (1,), generator=g))]
        while len(phones) < k:
            p = int(torch.randint(1, PHONES + 1, (1,), generator=g))
            if p != phones[-1]:
                phones.append(p)
        frames = []
        for p in phones:
            frames += [p] * int(torch.randint(2, 6, (1,), generator=g))
            frames += [0] * int(torch.randint(0, 3, (1,), generator=g))
        gain = 0.7 + 0.6 * torch.rand(1, generator=g)
        x = gain * PROTOS[torch.tensor(frames)] + 1.2 * torch.randn(len(frames), FEAT, generator=g)
        out.append((x, torch.tensor(phones)))
    return out


def collate(batch):
    """Like `DataCollatorCTCWithPadding`: padded features + attention_mask, labels padded with -100."""
    xs, ys = zip(*batch)
    feats = nn.utils.rnn.pad_sequence(xs, batch_first=True)
    mask = nn.utils.rnn.pad_sequence([torch.ones(len(x), dtype=torch.long) for x in xs], batch_first=True)
    labels = nn.utils.rnn.pad_sequence(list(ys), batch_first=True, padding_value=-100)
    return {"input_values": feats, "attention_mask": mask, "labels": labels}


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


class PhonemeForCTC(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.feature_projection = nn.Sequential(nn.Conv1d(config.input_dim, h, 5, padding=2), nn.GELU())
        self.encoder = nn.GRU(h, h, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.1)
        self.lm_head = nn.Linear(2 * h, config.vocab_size)

    def forward(self, input_values, attention_mask, labels=None):
        h = self.feature_projection(input_values.transpose(1, 2)).transpose(1, 2)
        logits = self.lm_head(self.dropout(self.encoder(h)[0]))
        loss = None
        if labels is not None:
            input_lengths = attention_mask.sum(-1)
            labels_mask = labels >= 0
            target_lengths = labels_mask.sum(-1)
            flattened_targets = labels.masked_select(labels_mask)
            log_probs = logits.transpose(0, 1)  # (T, B, C) as ctc_loss wants
            loss = F.ctc_loss(log_probs, flattened_targets, input_lengths, target_lengths,
                              blank=self.config.pad_token_id, reduction=self.config.ctc_loss_reduction,
                              zero_infinity=self.config.ctc_zero_infinity)
        return CausalLMOutput(loss=loss, logits=logits)


class SpeechDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        self.train_set, self.val_set = utterances(1000, seed=1), utterances(300, seed=2)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, collate_fn=collate)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=150, collate_fn=collate)


class CTCRecognizer(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = PhonemeForCTC(PhonemeCTCConfig())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss, prog_bar=True)
        best = out.logits.argmax(-1)
        errors = total = 0
        for path, n, ref in zip(best, batch["attention_mask"].sum(-1).tolist(), batch["labels"]):
            hyp = [p for p in torch.unique_consecutive(path[:n]).tolist() if p != 0]
            ref = ref[ref >= 0].tolist()
            errors, total = errors + edit_distance(hyp, ref), total + len(ref)
        self.log("val_per", errors / total)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(613)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", gradient_clip_val=5.0,
                        accumulate_grad_batches=2, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CTCRecognizer(), datamodule=SpeechDataModule())
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_phoneme_error_rate={m['val_per']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
