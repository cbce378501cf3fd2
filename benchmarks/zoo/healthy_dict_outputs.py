"""Healthy: a model whose forward returns a dict ({"logits", "embedding"}) and whose training_step returns a
dict ({"loss", "preds"}), as in many codebases; digits MLP, Adam, step-wise ExponentialLR with gentle decay."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class EmbeddingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        emb = self.encoder(x)
        return {"logits": self.classifier(F.relu(emb)), "embedding": emb}


class LitEmbedding(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = EmbeddingNet()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out["logits"], y)
        self.log("train_loss", loss)
        return {"loss": loss, "preds": out["logits"].argmax(1).detach()}

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out["logits"], y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=2e-3)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.995)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitEmbedding(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
