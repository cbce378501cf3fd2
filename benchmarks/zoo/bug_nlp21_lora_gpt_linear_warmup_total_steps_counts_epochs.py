"""Bug: LoRA fine-tuning of a small frozen GPT. The base model (2 pre-LN blocks, d = 64) is first pre-trained in a
plain PyTorch loop (standing in for loading a checkpoint) on sequences x_t = (x_{t-1} + k) % 16 with a per-sequence
step k in {1, 2, 3}. It is then adapted with rank-8 LoRA on the attention and MLP projections to sequences whose
step is k in {5, 7}; all base weights are frozen (`requires_grad_(False)`), only the LoRA factors (B zero-initialised)
and the final LayerNorm train. Dict batches `input_ids` / `labels`, in-model shift, output object with `.loss`;
AdamW with linear warm-up then linear decay.

The schedule was written for per-epoch stepping: `num_training_steps = self.trainer.max_epochs` and one warm-up
"step" - and then returned with `"interval": "step"`, copied from the LoRA recipe it was merged into. Lightning
steps it every batch, so the learning rate decays linearly to zero within the first 6 of the 150 optimizer steps and
stays there: the adapters barely move, nothing crashes, the training loss just stays flat where the base model left
it (the model keeps predicting the pre-training steps, worse than uniform). Symptom: val_loss 6.28 vs 0.11 with
`num_training_steps = self.trainer.estimated_stepping_batches` and a 10 % warm-up."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout21"
V, SEQ = 16, 24


def make_sequences(n, steps, g):
    k = torch.tensor(steps)[torch.randint(0, len(steps), (n,), generator=g)]
    x0 = torch.randint(0, V, (n,), generator=g)
    return (x0[:, None] + k[:, None] * torch.arange(SEQ)) % V


class LoRALinear(nn.Module):
    def __init__(self, base, rank=8, alpha=16):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_A = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.lora_A.T) @ self.lora_B.T


class Block(nn.Module):
    def __init__(self, d, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


@dataclass
class CausalLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class TinyGPT(nn.Module):
    def __init__(self, d=64, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, d), nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, V, bias=False)

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if labels is None else F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))
        return CausalLMOutput(loss, logits)


def pretrain_base(g, steps=120):
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        ids = make_sequences(64, [1, 2, 3], g)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


class LoRAFineTuner(L.LightningModule):
    def __init__(self, base, lr=3e-3):
        super().__init__()
        self.lr = lr
        self.model = base.requires_grad_(False)
        for blk in self.model.blocks:
            blk.qkv, blk.proj, blk.fc1, blk.fc2 = (LoRALinear(m) for m in (blk.qkv, blk.proj, blk.fc1, blk.fc2))
        self.model.ln_f.requires_grad_(True)

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        loss = self(input_ids=batch[0], labels=batch[0]).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(input_ids=batch[0], labels=batch[0]).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=0.0)
        num_training_steps, num_warmup_steps = self.trainer.max_epochs, 1

        def lr_lambda(step):
            if step < num_warmup_steps:
                return (step + 1) / num_warmup_steps
            return max(0.0, (num_training_steps - step) / max(1, num_training_steps - num_warmup_steps))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2111)
    g = torch.Generator().manual_seed(31)
    base = pretrain_base(g)
    train, val = make_sequences(1600, [5, 7], g), make_sequences(512, [5, 7], g)
    model = LoRAFineTuner(base)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=256))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
