"""Bug: multi-gate mixture-of-experts (MMoE) for a video feed with two task heads, "liked" (binary) and watch fraction
(regression in [0, 1]), on user/video ids (embeddings) and dense context features. Each task's gate is a linear layer
over the shared input followed by a softmax that should spread each sample's weight over the 4 experts; it was
written `torch.softmax(self.gates[t](h), dim=0)` - the dim from a single-example prototype where the gate output was a
vector - so with (batch, experts) logits each expert's weights are normalised over the samples of the batch. Every
sample's tower input now depends on the rest of the batch and shrinks like 1/batch_size; training (batches of 256)
and validation (batches of 1024) see different scales, and results change with the batch composition.
Symptom: val like-AUC 0.652 / like loss 0.662 / watch MAE 0.220 vs 0.726 / 0.566 / 0.128 with `dim=-1`."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout19"
N_USERS, N_VIDEOS = 200, 120


def simulate_sessions(n, seed):
    g = torch.Generator().manual_seed(seed)
    u_taste = torch.randn(N_USERS, 3, generator=g)
    v_topic = torch.randn(N_VIDEOS, 3, generator=g)
    v_len = torch.rand(N_VIDEOS, generator=g)
    users = torch.randint(0, N_USERS, (n,), generator=g)
    videos = torch.randint(0, N_VIDEOS, (n,), generator=g)
    ctx = torch.randn(n, 6, generator=g)              # hour sin/cos, network quality, session depth, ...
    affinity = (u_taste[users] * v_topic[videos]).sum(1) / 2
    watch = torch.sigmoid(1.2 * affinity - 1.5 * v_len[videos] + 0.4 * ctx[:, 0] + 0.3 * torch.randn(n, generator=g))
    like_logit = 2.5 * affinity + 2.0 * (watch - 0.5) - 1.0 + 0.5 * ctx[:, 1] * ctx[:, 2]
    liked = (torch.rand(n, generator=g) < torch.sigmoid(like_logit)).float()
    return users, videos, ctx, liked, watch


class MMoE(L.LightningModule):
    def __init__(self, n_experts=4, dim=16, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(N_USERS, dim)
        self.video = nn.Embedding(N_VIDEOS, dim)
        d_in = 2 * dim + 6
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d_in, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
                                     for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(d_in, n_experts) for _ in range(2))
        self.towers = nn.ModuleList(nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1)) for _ in range(2))

    def forward(self, users, videos, ctx):
        h = torch.cat([self.user(users), self.video(videos), ctx], 1)
        expert_out = torch.stack([e(h) for e in self.experts], 1)          # (B, E, 32)
        outs = []
        for t in range(2):
            w = torch.softmax(self.gates[t](h), dim=0)                     # (B, E) expert weights
            mixed = (w.unsqueeze(-1) * expert_out).sum(1)
            outs.append(self.towers[t](mixed).squeeze(-1))
        return outs[0], outs[1]                                            # like logit, watch logit

    def _losses(self, batch):
        users, videos, ctx, liked, watch = batch
        like_logit, watch_logit = self(users, videos, ctx)
        like_loss = F.binary_cross_entropy_with_logits(like_logit, liked)
        watch_loss = F.binary_cross_entropy_with_logits(watch_logit, watch)    # soft targets in [0, 1]
        return like_loss, watch_loss, like_logit, torch.sigmoid(watch_logit)

    def training_step(self, batch, batch_idx):
        like_loss, watch_loss, _, _ = self._losses(batch)
        loss = like_loss + watch_loss
        self.log_dict({"train_like_loss": like_loss, "train_watch_loss": watch_loss}, on_epoch=True, on_step=False)
        return loss

    def on_validation_epoch_start(self):
        self._buf = []

    def validation_step(self, batch, batch_idx):
        like_loss, watch_loss, like_logit, watch_pred = self._losses(batch)
        self.log_dict({"val_like_loss": like_loss, "val_watch_loss": watch_loss})
        self._buf.append((like_logit, batch[3], (watch_pred - batch[4]).abs()))

    def on_validation_epoch_end(self):
        logits, liked, err = (torch.cat(t) for t in zip(*self._buf))
        self.log("val_like_auc", float(roc_auc_score(liked.numpy(), logits.numpy())))
        self.log("val_watch_mae", err.mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(77)
    data = simulate_sessions(30000, seed=3)
    n_tr = 24000
    train = TensorDataset(*(t[:n_tr] for t in data))
    val = TensorDataset(*(t[n_tr:] for t in data))
    model = MMoE()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=256, shuffle=True), DataLoader(val, batch_size=1024))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_like_auc={float(m['val_like_auc']):.3f} val_watch_mae={float(m['val_watch_mae']):.3f} "
          f"val_like_loss={float(m['val_like_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
