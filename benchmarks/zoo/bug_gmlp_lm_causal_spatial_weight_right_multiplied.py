"""Bug: a small gMLP causal language model (Liu et al. 2021, "Pay Attention to MLPs") written by hand, HF-style:
dict batches `input_ids`/`labels`, the model shifts the labels and computes the loss inside `forward`. The data are
two interleaved arithmetic streams, x[t] = (x[t-2] + step_a or step_b) mod 19 on even / odd positions, so the next
token is fully predictable from the previous four; the 9,025 (start, step) combinations are split disjointly.

The spatial gating unit mixes positions with a learned (T, T) matrix made causal by `tril`. The user started from
`nn.Linear(seq_len, seq_len)` applied to the transposed activations and, to mask the weight, replaced it by a raw
parameter and wrote `v.transpose(1, 2) @ w` - forgetting that `nn.Linear` multiplies by the *transposed* weight. So
`out[t] = sum_s w[s, t] v[s]`, and with the lower-triangular mask that is s >= t: every position reads the positions
after it, including the token it has to predict. Training and teacher-forced validation loss collapse to ~0 and look
excellent; generation, where the future is not there yet, is poor.

Symptom: teacher-forced val loss 0.001 (looks perfect, below the honest floor: the first tokens of each stream are
random) but greedy continuation accuracy 0.05, against val loss 0.29 and continuation accuracy 1.00 with `w @ v` (the
causal product)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout14"
VOCAB, SEQ_LEN = 19, 24


def stream_params(seed):
    """All (start_a, step_a, start_b, step_b) with steps 1..5, shuffled; train and val take disjoint slices."""
    r, s = torch.arange(VOCAB), torch.arange(1, 6)
    grid = torch.cartesian_prod(r, s, r, s)
    return grid[torch.randperm(len(grid), generator=torch.Generator().manual_seed(seed))]


class InterleavedStreams(Dataset):
    """Even positions: start_a + k * step_a, odd positions: start_b + k * step_b (mod VOCAB)."""

    def __init__(self, params):
        k = torch.arange(SEQ_LEN // 2)
        a = params[:, :1] + params[:, 1:2] * k
        b = params[:, 2:3] + params[:, 3:4] * k
        self.ids = torch.stack([a, b], dim=-1).flatten(1) % VOCAB

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


class SpatialGatingUnit(nn.Module):
    def __init__(self, d_ffn, seq_len):
        super().__init__()
        self.norm = nn.LayerNorm(d_ffn // 2)
        # near-zero weights and unit bias: the unit starts as the identity gate, as in the paper
        self.weight = nn.Parameter(torch.empty(seq_len, seq_len).uniform_(-1e-3, 1e-3))
        self.bias = nn.Parameter(torch.ones(seq_len))
        self.register_buffer("causal", torch.tril(torch.ones(seq_len, seq_len)))

    def forward(self, x):
        u, v = x.chunk(2, dim=-1)
        v = self.norm(v)
        T = v.size(1)
        w = (self.weight * self.causal)[:T, :T]
        v = (v.transpose(1, 2) @ w).transpose(1, 2) + self.bias[:T, None]
        return u * v


class GMLPBlock(nn.Module):
    def __init__(self, d_model, d_ffn, seq_len):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.proj_in = nn.Linear(d_model, d_ffn)
        self.sgu = SpatialGatingUnit(d_ffn, seq_len)
        self.proj_out = nn.Linear(d_ffn // 2, d_model)

    def forward(self, x):
        return x + self.proj_out(self.sgu(F.gelu(self.proj_in(self.norm(x)))))


class GMLPForCausalLM(nn.Module):
    def __init__(self, vocab, d_model=64, d_ffn=256, n_layers=3, seq_len=SEQ_LEN):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.ModuleList(GMLPBlock(d_model, d_ffn, seq_len) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab)

    def forward(self, input_ids, labels=None):
        h = self.embed(input_ids)
        for block in self.blocks:
            h = block(h)
        logits = self.lm_head(self.norm(h))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        return {"loss": loss, "logits": logits}


class LitGMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = GMLPForCausalLM(VOCAB)

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        loss = self(**batch)["loss"]
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"], prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)

    @torch.no_grad()
    def continue_greedy(self, ids, n_prompt):
        """Greedy continuation after the first n_prompt tokens; the positions not generated yet hold token 0."""
        out = ids.clone()
        out[:, n_prompt:] = 0
        for t in range(n_prompt, ids.size(1)):
            out[:, t] = self.model(input_ids=out)["logits"][:, t - 1].argmax(-1)
        return out


def main():
    L.seed_everything(14)
    params = stream_params(seed=1)
    train, val = InterleavedStreams(params[:5000]), InterleavedStreams(params[5000:5500])
    model = LitGMLP()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="gmlp_lm"), log_every_n_steps=20)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=250))

    model.eval()
    ids = val.ids[:200]
    gen = model.continue_greedy(ids, n_prompt=4)
    acc = (gen[:, 4:] == ids[:, 4:]).float().mean().item()
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.4f}")
    print(f"SYMPTOM greedy_continuation_acc={acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
