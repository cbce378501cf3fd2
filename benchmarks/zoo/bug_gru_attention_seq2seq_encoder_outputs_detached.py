"""Bug: a GRU encoder-decoder with Luong (dot) attention, teacher forcing and scheduled sampling, on a "decipher"
task (output = input reversed and passed through a substitution table). In `forward` the encoder's outputs and final
state are detached (`memory, h = memory.detach(), h.detach()`, meant to "free the encoder graph early"): the encoder
and source embedding get no gradient and stay at their random initialisation, the decoder attends to random
features. Val greedy exact-match 0.013 and token accuracy 0.617 vs 0.860 / 0.973 without the detach (healthy twin
`healthy_gru_attention_seq2seq_scheduled_sampling.py`). Adam, clipping, ExponentialLR per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout5"
SYMBOLS, PAD, BOS, EOS = 16, 0, 1, 2
VOCAB = SYMBOLS + 3
CIPHER = torch.randperm(SYMBOLS, generator=torch.Generator().manual_seed(11)) + 3


class Decipher(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            src = torch.randint(0, SYMBOLS, (int(torch.randint(4, 11, (1,), generator=g)),), generator=g)
            tgt = torch.cat([CIPHER[src.flip(0)], torch.tensor([EOS])])
            self.items.append((src + 3, tgt))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    src, tgt = zip(*items)
    tgt_in = [torch.cat([torch.tensor([BOS]), t[:-1]]) for t in tgt]
    return (pad_sequence(src, True, PAD), torch.tensor([len(s) for s in src]), pad_sequence(tgt_in, True, PAD),
            pad_sequence(tgt, True, -100))


class AttnSeq2Seq(L.LightningModule):
    def __init__(self, dim=64, lr=3e-3, epochs=10, max_sampling=0.25):
        super().__init__()
        self.save_hyperparameters()
        self.src_embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.encoder = nn.GRU(dim, dim, batch_first=True)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.combine = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, VOCAB)

    def forward(self, src, src_len, tgt_in, sampling=0.0):
        memory, h = self.encoder(self.src_embed(src))
        memory, h = memory.detach(), h.detach()  # free the encoder graph early, it is only read
        h = h[0]
        pad = src == PAD
        feed = torch.zeros_like(h)
        logits, prev = [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            h = self.cell(torch.cat([self.tgt_embed(prev), feed], -1), h)
            scores = torch.einsum("bd,btd->bt", h, memory).masked_fill(pad, float("-inf"))
            ctx = torch.einsum("bt,btd->bd", scores.softmax(-1), memory)
            feed = torch.tanh(self.combine(torch.cat([h, ctx], -1)))
            step = self.out(feed)
            logits.append(step)
            if t + 1 < tgt_in.shape[1]:
                prev = tgt_in[:, t + 1]
                if sampling > 0:
                    use_own = torch.rand(prev.shape, device=prev.device) < sampling
                    prev = torch.where(use_own & (prev != PAD), step.argmax(-1), prev)
        return torch.stack(logits, 1)

    def training_step(self, batch, batch_idx):
        src, src_len, tgt_in, tgt_out = batch
        p = self.hparams.max_sampling * min(1.0, self.current_epoch / (self.hparams.epochs - 1))
        loss = F.cross_entropy(self(src, src_len, tgt_in, p).reshape(-1, VOCAB), tgt_out.reshape(-1))
        self.log("train_loss", loss)
        return loss

    @torch.no_grad()
    def greedy(self, src, src_len, steps):
        tgt_in = torch.full((src.shape[0], steps), PAD, dtype=torch.long, device=src.device)
        tgt_in[:, 0] = BOS
        for t in range(1, steps):
            tgt_in[:, t] = self(src, src_len, tgt_in[:, :t])[:, -1].argmax(-1)
        return self(src, src_len, tgt_in).argmax(-1)

    def validation_step(self, batch, batch_idx):
        src, src_len, tgt_in, tgt_out = batch
        logits = self(src, src_len, tgt_in)
        keep = tgt_out != -100
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, VOCAB), tgt_out.reshape(-1)))
        self.log("val_token_acc", (logits.argmax(-1)[keep] == tgt_out[keep]).float().mean())
        if self.current_epoch == self.trainer.max_epochs - 1:  # greedy decoding is slow: last epoch only
            pred = self.greedy(src, src_len, tgt_in.shape[1])
            self.log("val_exact", ((pred == tgt_out) | ~keep).all(1).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)]


def main():
    L.seed_everything(5106)
    train = DataLoader(Decipher(2000, 0), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(Decipher(300, 1), batch_size=300, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, gradient_clip_val=1.0, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AttnSeq2Seq(), train, val)
    m = trainer.callback_metrics
    print(f"val_exact={float(m['val_exact']):.3f} val_token_acc={float(m['val_token_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
