"""Bug (initialisation): the RetinaNet-style multi-label tagger of
healthy_retinanet_style_multilabel_tagger_focal_prior_bias with the prior-bias line re-typed from the paper's formula
with the sign lost: `constant_(bias, math.log((1 - pi) / pi))`, +4.6 instead of -4.6. Every tag starts at probability
0.99 instead of 0.01 on a task where 90 % of the labels are negative: the first focal loss is about 40x the healthy
one, and Adam moves the bias by about lr per step, so most of the short run is spent pulling every logit down instead
of learning the patterns. Symptom: val mAP 0.18 vs 0.96 with the correct sign (the fixed script)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss"}
SPLIT = "heldout9"
N_TAGS = 12


def make_tagged_images(n, templates, g):
    x = 0.7 * torch.randn(n, 1, 16, 16, generator=g)
    y = (torch.rand(n, N_TAGS, generator=g) < 0.1).float()
    for i, j in y.nonzero().tolist():
        r, c = torch.randint(0, 12, (2,), generator=g).tolist()
        x[i, 0, r:r + 5, c:c + 5] += templates[j]
    return x, y


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum() if reduction == "sum" else loss.mean() if reduction == "mean" else loss


def average_precision(scores, labels):
    aps = []
    for s, t in zip(scores.T, labels.T):
        if t.sum() == 0:
            continue
        t = t[s.argsort(descending=True)]
        hits = t.cumsum(0)
        precision = hits / torch.arange(1, len(t) + 1)
        aps.append((precision * t).sum() / t.sum())
    return torch.stack(aps).mean()


class Tagger(nn.Module):
    def __init__(self, num_classes=N_TAGS, prior_probability=0.01):
        super().__init__()
        layers, cin = [], 1
        for cout in (16, 32, 48):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.cls_logits = nn.Linear(48, num_classes)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, math.log((1 - prior_probability) / prior_probability))

    def forward(self, x):
        return self.cls_logits(self.features(x).amax(dim=(2, 3)))


class LitTagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = Tagger()
        self.val_scores, self.val_labels = [], []

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = sigmoid_focal_loss(self(x), y, reduction="sum") / y.sum().clamp(min=1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", sigmoid_focal_loss(logits, y, reduction="sum") / y.sum().clamp(min=1))
        self.val_scores.append(logits.sigmoid())
        self.val_labels.append(y)

    def on_validation_epoch_end(self):
        self.log("val_map", average_precision(torch.cat(self.val_scores), torch.cat(self.val_labels)))
        self.val_scores.clear()
        self.val_labels.clear()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(11)
    g = torch.Generator().manual_seed(11)
    templates = torch.randn(N_TAGS, 5, 5, generator=g).sign() * 1.2
    x_tr, y_tr = make_tagged_images(1200, templates, g)
    x_va, y_va = make_tagged_images(400, templates, g)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitTagger(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=200))
    print(f"val_map={trainer.callback_metrics['val_map'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
