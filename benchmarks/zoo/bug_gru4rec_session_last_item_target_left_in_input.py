"""Bug: a GRU4Rec-style session recommender (item Embedding -> GRU over the packed session -> scores over the item
catalogue, softmax cross-entropy, evaluated with HitRate@10). The task is "given the clicks of a session so far,
predict the item clicked last". Sessions are right-padded with their lengths kept; the target is gathered as
`sessions[arange(B), lengths - 1]`, but the GRU input is still the whole padded session packed with the full
`lengths` (the `- 1` was applied to the target index and forgotten on the input). The final hidden state is
computed right after reading the target item, so the network learns to echo the last input. Validation looks
superb, and the model is worthless when it has to predict a click it has not seen.
Symptom: val HR@10 1.00 as evaluated in training, but 0.06 when the last click is really held out (the deployment
setting), vs 0.72 / 0.72 with the input packed with `lengths - 1`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout15"
N_ITEMS, MAX_LEN = 300, 12


def make_sessions(n, g):
    """Item 0 is padding. Each item has 3 likely successors; sessions follow this browsing graph with some noise."""
    succ = torch.randint(1, N_ITEMS, (N_ITEMS, 3), generator=torch.Generator().manual_seed(123))
    lengths = torch.randint(4, MAX_LEN + 1, (n,), generator=g)
    sessions = torch.zeros(n, MAX_LEN, dtype=torch.long)
    for i in range(n):
        cur = int(torch.randint(1, N_ITEMS, (1,), generator=g))
        for t in range(int(lengths[i])):
            sessions[i, t] = cur
            if float(torch.rand(1, generator=g)) < 0.8:
                cur = int(succ[cur, int(torch.randint(0, 3, (1,), generator=g))])
            else:
                cur = int(torch.randint(1, N_ITEMS, (1,), generator=g))
    return sessions, lengths


class GRU4Rec(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(N_ITEMS, d, padding_idx=0)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(d, N_ITEMS)

    def forward(self, sessions, lengths):
        packed = pack_padded_sequence(self.drop(self.emb(sessions)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.gru(packed)
        return self.out(self.drop(h[-1]))

    def step(self, batch):
        sessions, lengths = batch
        target = sessions[torch.arange(len(sessions)), lengths - 1]
        logits = self(sessions, lengths)
        logits[:, 0] = float("-inf")
        loss = F.cross_entropy(logits, target)
        hr10 = (logits.topk(10, dim=1).indices == target[:, None]).any(1).float().mean()
        return loss, hr10

    def training_step(self, batch, batch_idx):
        loss, _ = self.step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, hr10 = self.step(batch)
        self.log_dict({"val_loss": loss, "val_hr10": hr10}, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@torch.no_grad()
def heldout_hr10(model, sessions, lengths):
    """Deployment: the last click is not known yet; the session is cut before it."""
    model.eval()
    target = sessions[torch.arange(len(sessions)), lengths - 1]
    cut = sessions.clone()
    cut[torch.arange(len(sessions)), lengths - 1] = 0
    logits = model(cut, lengths - 1)
    logits[:, 0] = float("-inf")
    return (logits.topk(10, dim=1).indices == target[:, None]).any(1).float().mean().item()


def main():
    L.seed_everything(7)
    g = torch.Generator().manual_seed(7)
    s_tr, l_tr = make_sessions(4000, g)
    s_va, l_va = make_sessions(800, g)
    train_dl = DataLoader(TensorDataset(s_tr, l_tr), batch_size=128, shuffle=True)
    val_dl = DataLoader(TensorDataset(s_va, l_va), batch_size=256)
    model = GRU4Rec()
    trainer = L.Trainer(max_epochs=12, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="gru4rec"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    with torch.no_grad():
        _, hr = model.step((s_va, l_va))
    print(f"SYMPTOM val_hr10_as_trained={hr.item():.3f}")
    print(f"SYMPTOM val_hr10_last_click_held_out={heldout_hr10(model, s_va, l_va):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
