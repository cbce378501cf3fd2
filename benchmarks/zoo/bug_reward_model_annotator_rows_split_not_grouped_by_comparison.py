"""Bug: a pairwise reward model (Bradley-Terry loss, -logsigmoid(r_chosen - r_rejected)) trained on a preference
export where every comparison was labelled by three annotators and is stored as three rows (same prompt, same two
responses, each annotator's choice). The user splits the rows with `random_split`, as for any table, so most
validation comparisons have one or two sibling rows in training: the model has already fitted these exact response
pairs and the validation accuracy measures memorisation, not how well the reward generalises to new responses.
Symptom: val pairwise acc 0.86 (row split) while the same model gets 0.75 on fresh comparisons; splitting by
comparison id gives val acc 0.70 (fresh-comparison acc 0.74), an honest estimate."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout15"
VOCAB = 500
PAD = 0


def make_world(seed):
    g = torch.Generator().manual_seed(seed)
    token_value = torch.zeros(VOCAB)
    signal = torch.randperm(VOCAB - 1, generator=g)[:250] + 1
    token_value[signal] = torch.randn(250, generator=g)
    return token_value


def make_comparisons(token_value, n, seed, annotators=3):
    """Rows of (comparison_id, response_a, response_b, a_preferred); each comparison appears `annotators` times."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for cid in range(n):
        pair = []
        for _ in range(2):
            length = int(torch.randint(10, 21, (1,), generator=g))
            toks = torch.randint(1, VOCAB, (length,), generator=g)
            # part of the quality is idiosyncratic (tone, correctness) and not carried by any single word
            quality = token_value[toks].mean() * 6 + 0.5 * torch.randn(1, generator=g).item()
            pair.append((toks, float(quality)))
        p_a = torch.sigmoid(torch.tensor(3.0 * (pair[0][1] - pair[1][1])))
        for _ in range(annotators):
            a_wins = bool(torch.rand(1, generator=g) < p_a)
            chosen, rejected = (pair[0][0], pair[1][0]) if a_wins else (pair[1][0], pair[0][0])
            rows.append((cid, chosen, rejected))
    return rows


class PreferenceRows(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def pad(seqs):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    return ids, (ids != PAD).long()


def collate(rows):
    c_ids, c_mask = pad([r[1] for r in rows])
    r_ids, r_mask = pad([r[2] for r in rows])
    return {"chosen_input_ids": c_ids, "chosen_attention_mask": c_mask,
            "rejected_input_ids": r_ids, "rejected_attention_mask": r_mask}


class RewardModel(L.LightningModule):
    def __init__(self, dim=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.score = nn.Sequential(nn.Linear(dim, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 1))

    def reward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1)
        return self.score(pooled).squeeze(-1)

    def forward(self, batch):
        r_c = self.reward(batch["chosen_input_ids"], batch["chosen_attention_mask"])
        r_r = self.reward(batch["rejected_input_ids"], batch["rejected_attention_mask"])
        return -F.logsigmoid(r_c - r_r).mean(), (r_c > r_r).float().mean()

    def training_step(self, batch, batch_idx):
        loss, acc = self(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


@torch.no_grad()
def pairwise_acc(model, rows):
    model.eval()
    b = collate(rows)
    return model(b)[1].item()


if __name__ == "__main__":
    L.seed_everything(88)
    token_value = make_world(3)
    rows = make_comparisons(token_value, 1400, seed=4)
    train_rows, val_rows = random_split(PreferenceRows(rows), [0.8, 0.2], generator=torch.Generator().manual_seed(0))
    fresh = make_comparisons(token_value, 600, seed=5, annotators=1)
    model = RewardModel()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="reward_model_rows"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_rows, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val_rows, batch_size=256, collate_fn=collate))
    print(f"SYMPTOM val_pairwise_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"SYMPTOM fresh_comparisons_acc={pairwise_acc(model, fresh):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
