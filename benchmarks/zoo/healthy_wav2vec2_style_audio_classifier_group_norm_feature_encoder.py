"""Healthy: a small audio classifier written the way HuggingFace writes `Wav2Vec2ForSequenceClassification`: a
config dataclass; a convolutional feature encoder (`feat_extract_norm="group"`: the first Conv1d followed by a
GroupNorm with one group per channel, then strided Conv1d + GELU layers, no bias); a feature projection (LayerNorm +
Linear + dropout); a grouped positional convolution added to the features; a post-LN Transformer encoder layer; a
`projector`, a MEAN over the real frames only (the frame-level mask derived from the sample-level `attention_mask`
through the conv output lengths, `_get_feat_extract_output_lengths`), and a `classifier`; the loss inside the model;
dict batches `input_values` (each clip normalised to zero mean and unit variance over its real samples, as
`Wav2Vec2FeatureExtractor(do_normalize=True)` does, then zero-padded), `attention_mask`, `labels`. Synthetic clips
of 600-1200 samples: 4 classes of two-tone patterns (low-high, high-low, low-low-low, high-gap-high) with random
pitch jitter, amplitude, phase and heavy noise (1.5x the tone amplitude). AdamW, linear warm-up + linear decay per
step. Reaches val accuracy ~0.91."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout9"


@dataclass
class Wav2Vec2Config:
    conv_dim: tuple = (32, 32, 32)
    conv_kernel: tuple = (10, 3, 3)
    conv_stride: tuple = (5, 2, 2)
    hidden_size: int = 48
    num_attention_heads: int = 4
    intermediate_size: int = 96
    num_conv_pos_embeddings: int = 16
    num_conv_pos_embedding_groups: int = 4
    hidden_dropout: float = 0.1
    feat_proj_dropout: float = 0.1
    classifier_proj_size: int = 32
    num_labels: int = 4
    layer_norm_eps: float = 1e-5


class ToneClips(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            label = int(torch.randint(4, (1,), generator=g))
            length = int(torch.randint(600, 1201, (1,), generator=g))
            low = 0.03 * (1 + 0.1 * torch.randn(1, generator=g))
            high = 0.09 * (1 + 0.1 * torch.randn(1, generator=g))
            t = torch.arange(length).float()
            half = length // 2
            if label == 0:
                freq = torch.where(t < half, low, high)
            elif label == 1:
                freq = torch.where(t < half, high, low)
            elif label == 2:
                freq = low.expand(length)
            else:
                freq = high.expand(length)
            phase = 2 * math.pi * torch.rand(1, generator=g)
            wave = torch.sin(2 * math.pi * torch.cumsum(freq, 0) + phase)
            if label == 3:
                wave[length // 3: 2 * length // 3] = 0.0
            amp = 0.2 + torch.rand(1, generator=g) * 3.0
            self.items.append((amp * wave + 1.5 * amp * torch.randn(length, generator=g), label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    width = max(len(x) for x, _ in batch)
    values = torch.zeros(len(batch), width)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    for i, (x, _) in enumerate(batch):
        values[i, : len(x)] = (x - x.mean()) / torch.sqrt(x.var() + 1e-7)
        mask[i, : len(x)] = 1
    return {"input_values": values, "attention_mask": mask, "labels": torch.tensor([y for _, y in batch])}


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class Wav2Vec2FeatureEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        layers, in_dim = [], 1
        for i, (dim, k, s) in enumerate(zip(config.conv_dim, config.conv_kernel, config.conv_stride)):
            block = [nn.Conv1d(in_dim, dim, k, stride=s, bias=False)]
            if i == 0:
                block.append(nn.GroupNorm(dim, dim, affine=True))
            block.append(nn.GELU())
            layers.append(nn.Sequential(*block))
            in_dim = dim
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, input_values):
        hidden = input_values[:, None]
        for layer in self.conv_layers:
            hidden = layer(hidden)
        return hidden


class Wav2Vec2PositionalConvEmbedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.conv = nn.Conv1d(config.hidden_size, config.hidden_size, config.num_conv_pos_embeddings,
                              padding=config.num_conv_pos_embeddings // 2, groups=config.num_conv_pos_embedding_groups)
        self.remove = 1 if config.num_conv_pos_embeddings % 2 == 0 else 0

    def forward(self, hidden):
        out = self.conv(hidden.transpose(1, 2))
        if self.remove:
            out = out[:, :, :-self.remove]
        return F.gelu(out).transpose(1, 2)


class Wav2Vec2ForSequenceClassification(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.feature_extractor = Wav2Vec2FeatureEncoder(config)
        self.feature_projection = nn.Sequential(nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps),
                                                nn.Linear(config.conv_dim[-1], config.hidden_size),
                                                nn.Dropout(config.feat_proj_dropout))
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(config)
        self.encoder_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = nn.TransformerEncoderLayer(config.hidden_size, config.num_attention_heads,
                                                  config.intermediate_size, config.hidden_dropout,
                                                  activation="gelu", batch_first=True)
        self.projector = nn.Linear(config.hidden_size, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)

    def _get_feat_extract_output_lengths(self, lengths):
        for k, s in zip(self.config.conv_kernel, self.config.conv_stride):
            lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
        return lengths

    def forward(self, input_values, attention_mask, labels=None):
        features = self.feature_extractor(input_values).transpose(1, 2)
        hidden = self.feature_projection(features)
        frames = self._get_feat_extract_output_lengths(attention_mask.sum(-1))
        padding_mask = torch.arange(hidden.shape[1], device=hidden.device)[None] < frames[:, None]
        hidden = hidden.masked_fill(~padding_mask[..., None], 0.0)
        hidden = self.encoder_layer_norm(hidden + self.pos_conv_embed(hidden))
        hidden = self.encoder(hidden, src_key_padding_mask=~padding_mask)
        hidden = self.projector(hidden).masked_fill(~padding_mask[..., None], 0.0)
        pooled = hidden.sum(dim=1) / padding_mask.sum(dim=1, keepdim=True)
        logits = self.classifier(pooled)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class LitAudio(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=30, total=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = Wav2Vec2ForSequenceClassification(Wav2Vec2Config())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        w, total = self.hparams.warmup, self.hparams.total
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else max(0.0, (total - s) / (total - w)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(9110)
    train = DataLoader(ToneClips(640, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ToneClips(240, 1), batch_size=120, collate_fn=collate)
    epochs = 5
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitAudio(total=epochs * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
