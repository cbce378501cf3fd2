"""Bug: a small Transformer encoder-decoder (nn.Transformer, batch_first, learned positions) learns a toy
"cipher": the target is the source read backwards with every letter mapped through a fixed substitution table.
Targets are stored as [BOS] y1 .. yn [EOS] and padded; teacher forcing splits them into decoder input and labels.
The canonical lines are `dec_in = tgt[:, :-1]` and `labels = tgt[:, 1:]`; here the two slices are swapped
(`dec_in = tgt[:, 1:]`, `labels = tgt[:, :-1]`), an easy slip when the lines are typed from memory. The decoder now
gets at position t the token it has to predict at position t + 1, so with the causal mask every label is the decoder
input one step back: teacher-forced accuracy is perfect and the model never learns the cipher.
Symptom: teacher-forced val token accuracy 1.00 but greedy-decoding exact match 0.00; with the slices the right
way round token accuracy 0.99 and greedy exact match 0.92."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout12"

PAD, BOS, EOS = 0, 1, 2
N_LETTERS = 20
VOCAB = N_LETTERS + 3
MAX_SRC = 10
MAX_TGT = MAX_SRC + 2


def make_pairs(n, g, table):
    src = torch.full((n, MAX_SRC), PAD)
    tgt = torch.full((n, MAX_TGT), PAD)
    lengths = torch.randint(4, MAX_SRC + 1, (n,), generator=g)
    for i in range(n):
        k = int(lengths[i])
        letters = torch.randint(0, N_LETTERS, (k,), generator=g)
        src[i, :k] = letters + 3
        tgt[i, 0] = BOS
        tgt[i, 1:k + 1] = table[letters.flip(0)] + 3
        tgt[i, k + 1] = EOS
    return src, tgt


class CipherTransformer(L.LightningModule):
    def __init__(self, d_model=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.src_pos = nn.Embedding(MAX_SRC, d_model)
        self.tgt_pos = nn.Embedding(MAX_TGT, d_model)
        self.transformer = nn.Transformer(d_model, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                          dim_feedforward=128, dropout=0.1, batch_first=True)
        self.out = nn.Linear(d_model, VOCAB)

    def forward(self, src, dec_in):
        s_pos = torch.arange(src.shape[1], device=src.device)
        t_pos = torch.arange(dec_in.shape[1], device=src.device)
        causal = nn.Transformer.generate_square_subsequent_mask(dec_in.shape[1], device=src.device)
        h = self.transformer(self.embed(src) + self.src_pos(s_pos), self.embed(dec_in) + self.tgt_pos(t_pos),
                             tgt_mask=causal, src_key_padding_mask=src == PAD,
                             tgt_key_padding_mask=dec_in == PAD, memory_key_padding_mask=src == PAD)
        return self.out(h)

    def _step(self, batch):
        src, tgt = batch
        dec_in, labels = tgt[:, 1:], tgt[:, :-1]
        logits = self(src, dec_in)
        labels = labels.masked_fill(labels == PAD, -100)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        keep = labels != -100
        acc = (logits.argmax(-1)[keep] == labels[keep]).float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_tok_acc": acc})

    @torch.no_grad()
    def greedy(self, src):
        ys = torch.full((src.shape[0], 1), BOS)
        for _ in range(MAX_TGT - 1):
            nxt = self(src, ys)[:, -1].argmax(-1, keepdim=True)
            ys = torch.cat([ys, nxt], 1)
        return ys

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches,
                                                    pct_start=0.2)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def exact_match(pred, tgt):
    hits = []
    for p, t in zip(pred, tgt):
        t = t[1:]
        n = int((t != PAD).sum())           # letters + EOS
        hits.append(bool((p[1:n + 1] == t[:n]).all()))
    return sum(hits) / len(hits)


def main():
    L.seed_everything(4242)
    g = torch.Generator().manual_seed(4242)
    table = torch.randperm(N_LETTERS, generator=g)
    src_tr, tgt_tr = make_pairs(4000, g, table)
    src_va, tgt_va = make_pairs(500, g, table)
    train_dl = DataLoader(TensorDataset(src_tr, tgt_tr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(src_va, tgt_va), batch_size=250)

    model = CipherTransformer()
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=TensorBoardLogger("lightning_logs", name="cipher"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)

    model.eval()
    print(f"SYMPTOM val_tok_acc={float(trainer.callback_metrics['val_tok_acc']):.3f}")
    print(f"SYMPTOM greedy_exact_match={exact_match(model.greedy(src_va), tgt_va):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
