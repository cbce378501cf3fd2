"""Healthy: Direct Preference Optimisation (DPO) of a small causal Transformer. The base model is first SFT-pretrained
in-script (plain PyTorch, 150 steps) on `BOS d1..d5 SEP response EOS` where the response is, half of the time, the
digits sorted, and half of the time a "near miss" (sorted with one adjacent pair swapped), so the reference model is
indifferent between the two. Preference pairs then say sorted > near miss. The policy starts as the base; the
reference is a frozen `deepcopy` of it. Loss: `-logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))` with beta = 0.1,
where each term is the *sum* of the response-token log-probabilities (prompt tokens masked with -100, labels
shifted once).

Why it is correct: the reference has `requires_grad=False`, is evaluated under `torch.no_grad()`, is kept in eval
mode by overriding `train()`, and is not in the optimiser (which holds exactly the policy's parameters); the DPO loss
starts at ln 2 because policy == reference at step 0; the log-probs cover only the response and EOS; prompts are
deduplicated and disjoint between train and val. Measured after 4 epochs: val DPO loss 0.69 (ln 2) -> 0.05,
implicit-reward accuracy 1.00, and greedy decoding produces the sorted answer for 0.93 of the val prompts (0.90 for the
reference, whose near-miss probability mass DPO removes)."""

import copy

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout32"
BOS, SEP, EOS, D0 = 0, 1, 2, 3
VOCAB, K = 13, 5
SEQ = K + 2 + K + 1


class CausalLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(SEQ, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        h = self.body(self.tok(input_ids) + self.pos(torch.arange(t)),
                      mask=nn.Transformer.generate_square_subsequent_mask(t), is_causal=True)
        return self.lm_head(self.ln_f(h))


def near_miss(sorted_digits, g):
    out = sorted_digits.clone()
    for i in range(len(out)):
        nz = (out[i, 1:] != out[i, :-1]).nonzero().flatten()
        j = int(nz[torch.randint(0, len(nz), (1,), generator=g)]) if len(nz) else 0
        out[i, [j, j + 1]] = out[i, [j + 1, j]]
    return out


def build(prompts, responses):
    n = len(prompts)
    ids = torch.cat([torch.full((n, 1), BOS), prompts + D0, torch.full((n, 1), SEP), responses + D0,
                     torch.full((n, 1), EOS)], 1)
    labels = ids.clone()
    labels[:, :K + 2] = -100
    return ids, labels


def unique_prompts(n, g):
    p = torch.randint(0, 10, (3 * n, K), generator=g)
    p = p[(p.sort(1).values[:, 1:] != p.sort(1).values[:, :-1]).any(1)]
    p = torch.unique(p, dim=0)
    return p[torch.randperm(len(p), generator=g)[:n]]


def sft_pretrain(model, g, steps=150):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        p = torch.randint(0, 10, (64, K), generator=g)
        s = p.sort(1).values
        resp = torch.where(torch.rand(64, 1, generator=g) < 0.5, s, near_miss(s, g))
        ids, labels = build(p, resp)
        loss = F.cross_entropy(model(ids)[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()


def pair_rows(prompts, g):
    s = prompts.sort(1).values
    c_ids, c_lab = build(prompts, s)
    r_ids, r_lab = build(prompts, near_miss(s, g))
    return [{"chosen_input_ids": c_ids[i], "chosen_labels": c_lab[i], "rejected_input_ids": r_ids[i],
             "rejected_labels": r_lab[i]} for i in range(len(prompts))]


def response_logp(logits, labels):
    lab = labels[:, 1:]
    lp = torch.gather(logits[:, :-1].log_softmax(-1), 2, lab.clamp(min=0)[..., None]).squeeze(-1)
    return (lp * (lab != -100)).sum(1)


class DPO(L.LightningModule):
    def __init__(self, base, beta=0.1, lr=5e-4):
        super().__init__()
        self.beta, self.lr = beta, lr
        self.policy = base
        self.ref = copy.deepcopy(base).requires_grad_(False).eval()

    def train(self, mode=True):
        super().train(mode)
        self.ref.eval()
        return self

    def _loss(self, batch):
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
        labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
        pi_c, pi_r = response_logp(self.policy(ids), labels).chunk(2)
        with torch.no_grad():
            ref_c, ref_r = response_logp(self.ref(ids), labels).chunk(2)
        z = self.beta * ((pi_c - ref_c) - (pi_r - ref_r))
        return -F.logsigmoid(z).mean(), (z > 0).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._loss(batch)
        self.log_dict({"val_loss": loss, "val_reward_acc": acc})

    def configure_optimizers(self):
        return torch.optim.AdamW(self.policy.parameters(), lr=self.lr, weight_decay=0.0)


@torch.no_grad()
def greedy_sorted_rate(model, prompts):
    ids = torch.cat([torch.full((len(prompts), 1), BOS), prompts + D0, torch.full((len(prompts), 1), SEP)], 1)
    for _ in range(K):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], 1)
    return (ids[:, K + 2:] - D0 == prompts.sort(1).values).all(1).float().mean().item()


def main():
    L.seed_everything(3208)
    g = torch.Generator().manual_seed(328)
    base = CausalLM()
    sft_pretrain(base, g)
    prompts = unique_prompts(2300, g)
    train, val = pair_rows(prompts[:2000], g), pair_rows(prompts[2000:], g)
    model = DPO(base)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=150))
    model.eval()
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_reward_acc={float(m['val_reward_acc']):.3f} "
          f"greedy_sorted={greedy_sorted_rate(model.policy, prompts[2000:]):.2f} "
          f"ref_greedy_sorted={greedy_sorted_rate(model.ref, prompts[2000:]):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
