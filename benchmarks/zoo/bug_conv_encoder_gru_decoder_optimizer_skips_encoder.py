"""Bug: a convolutional-encoder / GRU-decoder seq2seq model (ConvS2S-style encoder: embedding + positional embedding
+ three residual Conv1d/GLU blocks; GRU decoder teacher-forced with dot attention over the encoder states) that
learns to sort a sequence of digits. `configure_optimizers` was copied from a recipe whose encoder was pretrained
and frozen: it hands AdamW only the decoder, target embedding and output layer. Here the encoder is new and
`requires_grad=True`: its weights get gradients but are never updated, so the decoder attends to random features.
Val token accuracy 0.859 vs 0.939 with `self.parameters()` (same model). `val_check_interval=0.5`, StepLR per
epoch."""

import itertools

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout5"
DIGITS, LEN, BOS = 10, 12, 10
VOCAB = DIGITS + 1


def sorting_task(n, seed):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, DIGITS, (n, LEN), generator=g)
    tgt = src.sort(dim=1).values
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], dim=1)
    return TensorDataset(src, tgt_in, tgt)


class GLUBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv1d(dim, 2 * dim, 3, padding=1)

    def forward(self, x):
        return (x + F.glu(self.conv(x), dim=1)) * 0.5**0.5


class ConvGRUSeq2Seq(L.LightningModule):
    def __init__(self, dim=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.src_embed = nn.Embedding(VOCAB, dim)
        self.src_pos = nn.Embedding(LEN, dim)
        self.encoder = nn.Sequential(*[GLUBlock(dim) for _ in range(3)])
        self.tgt_embed = nn.Embedding(VOCAB, dim)
        self.decoder = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(2 * dim, VOCAB)

    def forward(self, src, tgt_in):
        x = self.src_embed(src) + self.src_pos.weight[: src.shape[1]]
        memory = self.encoder(x.transpose(1, 2)).transpose(1, 2)
        h, _ = self.decoder(self.tgt_embed(tgt_in), memory.mean(1).unsqueeze(0).contiguous())
        attn = torch.softmax(h @ memory.transpose(1, 2) / memory.shape[-1] ** 0.5, dim=-1)
        return self.out(torch.cat([h, attn @ memory], dim=-1))

    def _step(self, batch):
        src, tgt_in, tgt = batch
        logits = self(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1))
        return loss, (logits.argmax(-1) == tgt).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_token_acc": acc})

    def configure_optimizers(self):
        params = itertools.chain(self.tgt_embed.parameters(), self.decoder.parameters(), self.out.parameters())
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)]


def main():
    L.seed_everything(5109)
    train = DataLoader(sorting_task(3000, 0), batch_size=64, shuffle=True)
    val = DataLoader(sorting_task(500, 1), batch_size=500)
    trainer = L.Trainer(max_epochs=6, val_check_interval=0.5, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ConvGRUSeq2Seq(), train, val)
    print(f"val_token_acc={float(trainer.callback_metrics['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
