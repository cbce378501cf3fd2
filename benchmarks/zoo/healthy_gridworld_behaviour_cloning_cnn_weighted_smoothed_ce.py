"""Healthy: behaviour cloning on 8x8 grid worlds. Each map has random walls and a goal; a shortest-path expert
(BFS distance to the goal) labels random agent positions with one of five actions (up, down, left, right, stay -
"stay" only on the goal, so it is rare). A small CNN reads three one-hot planes (walls, agent, goal) and is trained
with class-weighted, label-smoothed cross-entropy on dict batches; validation is on unseen maps.
Final metric: val action accuracy 0.91 on unseen maps (the expert breaks ties between equally short moves by a
fixed order, which the CNN has to infer from far-away walls)."""

from collections import deque

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
SIZE = 8
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)]  # up, down, left, right, stay


def bfs(walls, goal):
    """Shortest-path distance to the goal for every cell (-1: unreachable); walls is a nested list of bools."""
    dist = [[-1] * SIZE for _ in range(SIZE)]
    dist[goal[0]][goal[1]] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES[:4]:
            nr, nc = r + dr, c + dc
            if 0 <= nr < SIZE and 0 <= nc < SIZE and not walls[nr][nc] and dist[nr][nc] < 0:
                dist[nr][nc] = dist[r][c] + 1
                queue.append((nr, nc))
    return dist


class GridDemos(Dataset):
    def __init__(self, n_maps, seed, per_map=8):
        g = torch.Generator().manual_seed(seed)
        self.obs, self.actions = [], []
        for _ in range(n_maps):
            walls = torch.rand(SIZE, SIZE, generator=g) < 0.2
            goal = tuple(int(v) for v in torch.randint(0, SIZE, (2,), generator=g))
            walls[goal] = False
            dist = bfs(walls.tolist(), goal)
            cells = (torch.tensor(dist) >= 0).nonzero()
            picks = cells[torch.randperm(len(cells), generator=g)[:per_map]]
            for r, c in picks.tolist():
                if dist[r][c] == 0:
                    action = 4
                else:
                    action = next(i for i, (dr, dc) in enumerate(MOVES[:4])
                                  if 0 <= r + dr < SIZE and 0 <= c + dc < SIZE
                                  and dist[r + dr][c + dc] == dist[r][c] - 1)
                planes = torch.zeros(3, SIZE, SIZE)
                planes[0] = walls.float()
                planes[1, r, c] = 1.0
                planes[2][goal] = 1.0
                self.obs.append(planes)
                self.actions.append(action)
        self.actions = torch.tensor(self.actions)

    def __len__(self):
        return len(self.actions)

    def __getitem__(self, i):
        return {"obs": self.obs[i], "action": self.actions[i]}


class BCPolicy(L.LightningModule):
    def __init__(self, class_weights, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weights", class_weights)
        self.net = nn.Sequential(
            nn.Conv2d(3, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 24, 3, padding=1), nn.ReLU(),
            nn.Conv2d(24, 24, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(24, 24, 3, padding=4, dilation=4),
            nn.ReLU(), nn.Flatten(), nn.Linear(24 * SIZE * SIZE, 128), nn.ReLU(), nn.Linear(128, 5))

    def forward(self, obs):
        return self.net(obs)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["obs"]), batch["action"], weight=self.class_weights, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["obs"])
        self.log("val_loss", F.cross_entropy(logits, batch["action"]))
        self.log("val_acc", (logits.argmax(1) == batch["action"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(17)
    tr, va = GridDemos(1000, seed=1), GridDemos(150, seed=2)
    counts = torch.bincount(tr.actions, minlength=5).float()
    weights = (counts.sum() / (5 * counts)).clamp(max=5.0)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=20,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BCPolicy(weights), DataLoader(tr, batch_size=64, shuffle=True), DataLoader(va, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}"
          f" action_counts={counts.tolist()}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
