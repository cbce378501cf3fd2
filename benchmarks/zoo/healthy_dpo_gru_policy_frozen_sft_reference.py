"""Healthy: Direct Preference Optimisation of a small GRU language-model policy on synthetic preference pairs. The
policy and the reference start from the same supervised (SFT) checkpoint, trained here in a short plain-PyTorch
loop; the reference is a frozen deep copy kept in eval mode, its log-probs computed under `torch.no_grad()`.
Sequence log-probs are summed over response tokens only (prompt positions are masked out), beta = 0.1, so the loss
starts at exactly ln 2. Annotators preferred responses with more "helpful" tokens (noisy). Final: val preference
accuracy of the implicit reward 0.85; the share of helpful tokens in greedy responses goes from 0.26 (SFT) to
1.00."""

import copy

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
VOCAB, PROMPT, RESP = 24, 5, 8
HELPFUL = torch.arange(1, 7)             # token ids annotators like


class GRULM(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.rnn = nn.GRU(d, 128, batch_first=True)
        self.out = nn.Linear(128, VOCAB)

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0])


def response_logps(lm, seq):
    """Sum of log p(response token | prefix) for each sequence (prompt positions masked out)."""
    logp = lm(seq[:, :-1]).log_softmax(-1)
    tok = torch.gather(logp, 2, seq[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = torch.zeros_like(tok)
    mask[:, PROMPT - 1:] = 1.0
    return (tok * mask).sum(-1)


def sft_data(n, g):
    prompts = torch.randint(7, VOCAB, (n, PROMPT), generator=g)
    responses = torch.randint(1, VOCAB, (n, RESP), generator=g)
    return torch.cat([prompts, responses], 1)


def preference_pairs(n, g):
    prompts = torch.randint(7, VOCAB, (n, PROMPT), generator=g)
    a = torch.randint(1, VOCAB, (n, RESP), generator=g)
    b = torch.randint(1, VOCAB, (n, RESP), generator=g)
    qa = torch.isin(a, HELPFUL).sum(1) + 0.5 * torch.randn(n, generator=g)
    qb = torch.isin(b, HELPFUL).sum(1) + 0.5 * torch.randn(n, generator=g)
    a_wins = (qa > qb).unsqueeze(1)
    chosen = torch.where(a_wins, a, b)
    rejected = torch.where(a_wins, b, a)
    return torch.cat([prompts, chosen], 1), torch.cat([prompts, rejected], 1)


def sft(g, steps=300):
    lm = GRULM()
    data = sft_data(4000, g)
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(steps):
        seq = data[torch.randint(0, len(data), (64,), generator=g)]
        loss = -response_logps(lm, seq).mean() / RESP
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lm


class DPO(L.LightningModule):
    def __init__(self, sft_model, beta=0.1, lr=5e-4):
        super().__init__()
        self.beta, self.lr = beta, lr
        self.policy = sft_model
        self.reference = copy.deepcopy(sft_model).requires_grad_(False).eval()

    def on_train_epoch_start(self):
        self.reference.eval()

    def dpo(self, chosen, rejected):
        pc, pr = response_logps(self.policy, chosen), response_logps(self.policy, rejected)
        with torch.no_grad():
            rc, rr = response_logps(self.reference, chosen), response_logps(self.reference, rejected)
        margin = self.beta * ((pc - rc) - (pr - rr))
        return -F.logsigmoid(margin).mean(), (margin > 0).float().mean()

    def training_step(self, batch, batch_idx):
        loss, acc = self.dpo(*batch)
        self.log("train_loss", loss)
        self.log("train_reward_acc", acc)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self.dpo(*batch)
        self.log("val_loss", loss)
        self.log("val_reward_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.policy.parameters(), lr=self.lr, weight_decay=0.0)


@torch.no_grad()
def helpful_share(lm, g, n=200):
    seq = torch.randint(7, VOCAB, (n, PROMPT), generator=g)
    for _ in range(RESP):
        seq = torch.cat([seq, lm(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    return torch.isin(seq[:, PROMPT:], HELPFUL).float().mean().item()


if __name__ == "__main__":
    L.seed_everything(2718)
    g = torch.Generator().manual_seed(0)
    sft_model = sft(g)
    before = helpful_share(sft_model, torch.Generator().manual_seed(9))
    train = TensorDataset(*preference_pairs(3000, g))
    val = TensorDataset(*preference_pairs(500, g))
    model = DPO(sft_model)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, gradient_clip_val=1.0,
                        logger=TensorBoardLogger("lightning_logs", name="dpo_gru"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=250))
    print(f"SYMPTOM val_reward_acc={trainer.callback_metrics['val_reward_acc'].item():.3f}")
    after = helpful_share(model.policy, torch.Generator().manual_seed(9))
    print(f"SYMPTOM helpful_share sft={before:.3f} dpo={after:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
