"""Bug: a mixture-of-experts classifier with top-1 (argmax) routing whose output is the chosen expert's output
alone, not multiplied by the gate probability as in Switch Transformers: argmax is not differentiable, so the
gate receives no gradient at all and routing stays at its random initial split forever (no load-balancing loss
either). Synthetic data with a label rule that differs per input region; Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
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
        top_i = probs.argmax(-1, keepdim=True)  # top-1 routing
        outs = torch.stack([e(x) for e in self.experts], dim=1)  # (n, experts, classes)
        # BUG: the chosen expert's output is not scaled by its gate probability, so no gradient reaches the gate
        return outs.gather(1, top_i.unsqueeze(-1).expand(-1, -1, CLASSES)).squeeze(1), probs, top_i

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, probs, top_i = self(x)
        loss = F.cross_entropy(logits, y)  # load-balancing term "to add later"
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
    L.seed_everything(1812)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MoE(), DataLoader(TensorDataset(*regional_rules(3000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*regional_rules(500, 1)), batch_size=250))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
