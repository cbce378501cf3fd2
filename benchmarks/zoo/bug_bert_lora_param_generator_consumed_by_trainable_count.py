"""Bug: LoRA fine-tuning of a small BERT-style encoder for sequence classification ([CLS] pooling, HF-style
`forward(input_ids, attention_mask, labels)` that computes the loss itself). The encoder is first pre-trained with
masked-LM on unlabelled Markov-chain text (standing in for a downloaded checkpoint), then frozen; LoRA adapters
(r=8, alpha=16, B zero-initialised) are injected into the query and value projections and a new linear head is
added. The task depends on word order: does marker token 5 come before marker token 7?

`configure_optimizers` collects the adapter parameters with a generator expression, logs the trainable-parameter
count (`sum(p.numel() for p in lora_params)`) - and then hands the same, now exhausted, generator to AdamW as the
first parameter group. PyTorch accepts a group with no parameters without a word, the logged count is right, and the
adapters never change: only the linear head on frozen [CLS] features trains. (Since lora_B stays at its zero init,
lora_A's gradient is exactly zero at every step too.)

Symptom: val accuracy 0.51 (chance) vs 0.93 when the generator is turned into a list first (same head, same lrs)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage", "dead-gradient"}
SPLIT = "heldout14"
VOCAB, PAD, CLS, MASK, SEQ = 44, 0, 1, 2, 24
FIRST_WORD = 3


def markov_text(n, seed, length=SEQ - 1):
    """Word ids FIRST_WORD..VOCAB-1 from a fixed sparse first-order Markov chain."""
    n_words = VOCAB - FIRST_WORD
    trans = (torch.randn(n_words, n_words, generator=torch.Generator().manual_seed(0)) * 2.5).softmax(-1)
    g = torch.Generator().manual_seed(seed)
    seq = torch.empty(n, length, dtype=torch.long)
    seq[:, 0] = torch.randint(0, n_words, (n,), generator=g)
    for t in range(1, length):
        seq[:, t] = torch.multinomial(trans[seq[:, t - 1]], 1, generator=g).squeeze(1)
    return seq + FIRST_WORD


def with_cls(words):
    return torch.cat([torch.full((len(words), 1), CLS), words], dim=1)


def order_task(n, seed):
    """Markov text with marker words 5 and 7 written over two random positions; label: 5 comes first."""
    g = torch.Generator().manual_seed(seed + 100)
    words = markov_text(n, seed)
    words[words == 5], words[words == 7] = 6, 8
    pos = torch.stack([torch.randperm(SEQ - 1, generator=g)[:2] for _ in range(n)])
    words[torch.arange(n), pos[:, 0]] = 5
    words[torch.arange(n), pos[:, 1]] = 7
    return with_cls(words), (pos[:, 0] < pos[:, 1]).long()


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r=8, alpha=16, dropout=0.05):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling


class SelfAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, attention_mask):
        B, T, D = x.shape
        q, k, v = (m(x).view(B, T, self.n_heads, -1).transpose(1, 2) for m in (self.query, self.key, self.value))
        mask = attention_mask[:, None, None, :].bool()
        return self.out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(B, T, D))


class EncoderLayer(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.attention = SelfAttention(d, n_heads)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, attention_mask):
        x = self.ln1(x + self.attention(x, attention_mask))
        return self.ln2(x + self.ffn(x))


class TinyBert(nn.Module):
    def __init__(self, d=64, n_heads=4, n_layers=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.position_embeddings = nn.Embedding(SEQ, d)
        self.emb_ln = nn.LayerNorm(d)
        self.layers = nn.ModuleList(EncoderLayer(d, n_heads) for _ in range(n_layers))

    def forward(self, input_ids, attention_mask):
        x = self.emb_ln(self.word_embeddings(input_ids) + self.position_embeddings(torch.arange(input_ids.size(1))))
        for layer in self.layers:
            x = layer(x, attention_mask)
        return x


def pretrain_mlm(encoder, steps=250, seed=0):
    """Masked-LM pre-training (15 % of words -> [MASK]); a plain loop, the checkpoint we fine-tune from."""
    lm_head = nn.Linear(encoder.word_embeddings.embedding_dim, VOCAB)
    opt = torch.optim.AdamW(list(encoder.parameters()) + list(lm_head.parameters()), lr=2e-3)
    text = with_cls(markov_text(4000, seed=seed + 50))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        ids = text[torch.randint(0, len(text), (64,), generator=g)]
        masked = (torch.rand(ids.shape, generator=g) < 0.15) & (ids >= FIRST_WORD)
        inputs = ids.masked_fill(masked, MASK)
        logits = lm_head(encoder(inputs, torch.ones_like(ids)))
        loss = F.cross_entropy(logits[masked], ids[masked])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


class LoraSequenceClassifier(nn.Module):
    def __init__(self, encoder, n_labels=2, r=8, alpha=16):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        for layer in self.encoder.layers:
            layer.attention.query = LoRALinear(layer.attention.query, r, alpha)
            layer.attention.value = LoRALinear(layer.attention.value, r, alpha)
        self.classifier = nn.Linear(encoder.word_embeddings.embedding_dim, n_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.classifier(self.encoder(input_ids, attention_mask)[:, 0])
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class LitLora(L.LightningModule):
    def __init__(self, model, lora_lr=3e-3, head_lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        loss = self.model(input_ids=ids, attention_mask=(ids != PAD).long(), labels=labels)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, labels = batch
        out = self.model(input_ids=ids, attention_mask=(ids != PAD).long(), labels=labels)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == labels).float().mean())

    def configure_optimizers(self):
        lora_params = (p for n, p in self.model.named_parameters() if "lora_" in n)
        rank_zero_info(f"trainable parameters: {sum(p.numel() for p in lora_params)} LoRA + "
                       f"{sum(p.numel() for p in self.model.classifier.parameters())} head")
        return torch.optim.AdamW([
            {"params": lora_params, "lr": self.hparams.lora_lr, "weight_decay": 0.0},
            {"params": self.model.classifier.parameters(), "lr": self.hparams.head_lr, "weight_decay": 0.01},
        ])


def main():
    L.seed_everything(2)
    encoder = TinyBert()
    pretrain_mlm(encoder)
    model = LitLora(LoraSequenceClassifier(encoder))
    x_train, y_train = order_task(2000, seed=1)
    x_val, y_val = order_task(600, seed=2)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="bert_lora"), log_every_n_steps=10)
    trainer.fit(model, DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_val, y_val), batch_size=200))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
