"""Healthy: a mixture-of-experts classifier with top-2 routing: a linear gate scores 4 expert MLPs, the two best
experts per sample are combined with their renormalised gate probabilities (so the gate gets gradient), plus the
Switch-Transformer load-balancing loss (0.01 x). Synthetic data whose label rule differs per region of input
space (so experts can specialise); Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
D, EXPERTS, CLASSES = 16, 4, 3
RULES = torch.randn(EXPERTS, D, CLASSES, generator=torch.Generator().manual_seed(7))


def regional_rules(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g)
    region = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
    y = torch.einsum("nd,ndc->nc", x, RULES[region]).argmax(1)
    return x, y


class MoE(L.LightningModule):
    def __init__(self, hidden=32):
        super().__init__()
        self.gate = nn.Linear(D, EXPERTS)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(D, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))
                                     for _ in range(EXPERTS))

    def forward(self, x):
        probs = F.softmax(self.gate(x), dim=-1)
        top_p, top_i = probs.topk(2, dim=-1)
        top_p = top_p / top_p.sum(-1, keepdim=True)
        outs = torch.stack([e(x) for e in self.experts], dim=1)  # (n, experts, classes)
        picked = outs.gather(1, top_i.unsqueeze(-1).expand(-1, -1, CLASSES))
        return (top_p.unsqueeze(-1) * picked).sum(1), probs, top_i

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, probs, top_i = self(x)
        dispatch = F.one_hot(top_i[:, 0], EXPERTS).float().mean(0)
        balance = EXPERTS * (dispatch * probs.mean(0)).sum()
        loss = F.cross_entropy(logits, y) + 0.01 * balance
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits, _, _ = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(1811)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MoE(), DataLoader(TensorDataset(*regional_rules(3000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*regional_rules(500, 1)), batch_size=250))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
