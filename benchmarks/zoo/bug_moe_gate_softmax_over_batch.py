"""Bug: a dense mixture-of-experts classifier whose gate normalises with `softmax(gate_logits, dim=0)`: over the
samples of the batch instead of over the experts, so each sample's mixing weights (and its prediction) depend on the
other samples in the batch and on the batch size. Four MLP experts plus a linear gate on sklearn's digits (64
standardised pixel features), cross-entropy, Adam, batches of 32 for training and 128 for validation. Val acc 0.916 /
val loss 1.06 vs 0.969 / 0.105 with `dim=-1`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout2"


class DenseMoE(nn.Module):
    def __init__(self, d_in, d_out, n_experts=4, hidden=64):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out)) for _ in range(n_experts))
        self.gate = nn.Linear(d_in, n_experts)

    def forward(self, x):
        weights = F.softmax(self.gate(x), dim=0)  # BUG: normalises over the batch, not over the experts
        outputs = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, d_out)
        return (weights.unsqueeze(-1) * outputs).sum(dim=1)


class MoEClassifier(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.moe = DenseMoE(64, 10)

    def forward(self, x):
        return self.moe(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(13)
    d = load_digits()
    x_tr, x_va, y_tr, y_va = train_test_split(d.data, d.target, test_size=0.25, random_state=13, stratify=d.target)
    scaler = StandardScaler().fit(x_tr)
    tensors = lambda x, y: TensorDataset(torch.tensor(scaler.transform(x), dtype=torch.float32), torch.tensor(y))
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MoEClassifier(), DataLoader(tensors(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(tensors(x_va, y_va), batch_size=128))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
