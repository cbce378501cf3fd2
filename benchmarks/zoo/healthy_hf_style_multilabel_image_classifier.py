"""Healthy: an image classifier written the HuggingFace way, for multi-label data: a `ConvNetConfig` dataclass with
`problem_type="multi_label_classification"`, a `PreTrainedModel`-like module whose forward takes
`pixel_values` and `labels` and returns an `ImageClassifierOutput`-like dataclass with `.loss` and `.logits`
(BCEWithLogitsLoss computed inside the model), dict batches from a collate function, AdamW with no weight decay on
biases and norms, linear warm-up then linear decay per step (`get_linear_schedule_with_warmup` written out),
`accumulate_grad_batches=2`, `precision="bf16-mixed"`. Data: synthetic 16x16 scenes (seeded torch.Generator) that
contain any subset of 4 shapes (square, plus, horizontal bar, diagonal) at random positions on noise; labels are
the multi-hot set of shapes present (imbalanced: 20-60% positive). Own metric: val micro-F1 0.79."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout4"

SHAPES = [torch.ones(3, 3), torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]]), torch.tensor([[0.0] * 3, [1] * 3, [0] * 3]),
          torch.eye(3)]
PRIORS = torch.tensor([0.6, 0.4, 0.3, 0.2])


def make_scenes(n, gen, size=16):
    labels = (torch.rand(n, 4, generator=gen) < PRIORS).float()
    images = 0.4 * torch.randn(n, 1, size, size, generator=gen)
    pos = torch.randint(0, size - 3, (n, 4, 2), generator=gen)
    for i in range(n):
        for k in range(4):
            if labels[i, k]:
                r, c = pos[i, k].tolist()
                images[i, 0, r:r + 3, c:c + 3] += SHAPES[k]
    return images, labels


class SceneDataset(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"pixel_values": self.images[i], "labels": self.labels[i]}


def collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@dataclass
class ConvNetConfig:
    num_channels: int = 1
    hidden_sizes: tuple = (24, 48)
    num_labels: int = 4
    problem_type: str = "multi_label_classification"
    initializer_range: float = 0.02


@dataclass
class ImageClassifierOutput:
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None


class ConvNetForImageClassification(nn.Module):
    def __init__(self, config: ConvNetConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.hidden_sizes
        self.embedder = nn.Sequential(nn.Conv2d(config.num_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU())
        self.encoder = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
                                     nn.Conv2d(c2, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU())
        self.pooler = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(c2, config.num_labels)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, self.config.initializer_range)
            module.bias.data.zero_()

    def forward(self, pixel_values, labels=None):
        pooled = self.pooler(self.encoder(self.embedder(pixel_values))).flatten(1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None and self.config.problem_type == "multi_label_classification":
            loss = nn.BCEWithLogitsLoss()(logits, labels.to(logits.dtype))
        return ImageClassifierOutput(loss=loss, logits=logits)


class LitHFClassifier(L.LightningModule):
    def __init__(self, total_steps, warmup_steps=15):
        super().__init__()
        self.model = ConvNetForImageClassification(ConvNetConfig())
        self.total_steps, self.warmup_steps = total_steps, warmup_steps

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred, y = (out.logits > 0).float(), batch["labels"]
        tp = (pred * y).sum()
        f1 = 2 * tp / (pred.sum() + y.sum()).clamp(min=1)
        self.log("val_loss", out.loss)
        self.log("val_micro_f1", f1)

    def configure_optimizers(self):
        named = list(self.model.named_parameters())
        is_norm = {n for n, m in self.model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        plain = [p for n, p in named if n.endswith("bias") or n.rsplit(".", 1)[0] in is_norm]
        decayed = [p for n, p in named if not (n.endswith("bias") or n.rsplit(".", 1)[0] in is_norm)]
        opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.01}, {"params": plain, "weight_decay": 0.0}],
                                lr=3e-3)

        def lr_lambda(step):
            if step < self.warmup_steps:
                return step / max(1, self.warmup_steps)
            return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(121)
    gen = torch.Generator().manual_seed(121)
    train, val = SceneDataset(*make_scenes(1200, gen)), SceneDataset(*make_scenes(300, gen))
    epochs, bs, accum = 8, 32, 2
    total_steps = epochs * ((len(train) + bs - 1) // bs) // accum
    trainer = L.Trainer(max_epochs=epochs, accumulate_grad_batches=accum, precision="bf16-mixed", accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitHFClassifier(total_steps),
                DataLoader(train, batch_size=bs, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=300, collate_fn=collate))
    print(f"val_micro_f1={trainer.callback_metrics['val_micro_f1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
