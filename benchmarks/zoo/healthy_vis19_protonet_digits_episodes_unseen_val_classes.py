"""Healthy: prototypical network (few-shot metric learning) on sklearn digits. A small conv embedding is trained on
5-way 5-shot episodes (10 queries per class) drawn from digits 0-6 with random shift augmentation; the loss is the
cross-entropy over negative squared Euclidean distances to the class prototypes (labels re-indexed per episode).
Validation uses 3-way 5-shot episodes of the *unseen* digits 7-9, so it measures transfer, not memorisation.
Adam + StepLR. Final val episode acc 0.83 on the unseen digits (val loss 0.47)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"


class Episodes(Dataset):
    """Each item is one episode: (support x, support y, query x, query y) with labels 0..n_way-1."""

    def __init__(self, x, y, classes, n_way, k_shot, n_query, n_episodes, seed, augment=False):
        self.by_class = {c: x[y == c] for c in classes}
        self.classes = torch.tensor(classes)
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.n_episodes, self.seed, self.augment = n_episodes, seed, augment

    def __len__(self):
        return self.n_episodes

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 100003 + i)
        chosen = self.classes[torch.randperm(len(self.classes), generator=g)[:self.n_way]]
        sx, qx = [], []
        for c in chosen.tolist():
            pool = self.by_class[c]
            idx = torch.randperm(len(pool), generator=g)[:self.k_shot + self.n_query]
            sx.append(pool[idx[:self.k_shot]])
            qx.append(pool[idx[self.k_shot:]])
        sx, qx = torch.cat(sx), torch.cat(qx)
        if self.augment:
            sdy, sdx, qdy, qdx = torch.randint(-1, 2, (4,), generator=g).tolist()
            sx, qx = torch.roll(sx, (sdy, sdx), (2, 3)), torch.roll(qx, (qdy, qdx), (2, 3))
        sy = torch.arange(self.n_way).repeat_interleave(self.k_shot)
        qy = torch.arange(self.n_way).repeat_interleave(self.n_query)
        return sx, sy, qx, qy


class ProtoNet(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4, 64))

    def episode_logits(self, sx, sy, qx):
        z = self.embed(torch.cat([sx, qx]))
        zs, zq = z[:len(sx)], z[len(sx):]
        n_way = int(sy.max()) + 1
        protos = torch.stack([zs[sy == c].mean(0) for c in range(n_way)])
        return -torch.cdist(zq, protos).pow(2)

    def training_step(self, episode, batch_idx):
        sx, sy, qx, qy = episode
        logits = self.episode_logits(sx, sy, qx)
        loss = F.cross_entropy(logits, qy)
        self.log("train_loss", loss, batch_size=len(qy))
        self.log("train_acc", (logits.argmax(1) == qy).float().mean(), batch_size=len(qy))
        return loss

    def validation_step(self, episode, batch_idx):
        sx, sy, qx, qy = episode
        logits = self.episode_logits(sx, sy, qx)
        self.log("val_loss", F.cross_entropy(logits, qy), batch_size=len(qy), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == qy).float().mean(), batch_size=len(qy), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(55)
    d = load_digits()
    x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    train_eps = Episodes(x, y, list(range(7)), n_way=5, k_shot=5, n_query=10, n_episodes=100, seed=1, augment=True)
    val_eps = Episodes(x, y, [7, 8, 9], n_way=3, k_shot=5, n_query=10, n_episodes=40, seed=2)
    model = ProtoNet()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_eps, batch_size=None, shuffle=True), DataLoader(val_eps, batch_size=None))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
