"""Bug: a SASRec-style recommender on LEFT-padded sessions that passes the padding mask to its encoder blocks as well
as the causal mask ("mask the padding too", as for a BERT encoder): `block(h, src_mask=causal,
src_key_padding_mask=seq == 0)`. For a padding position near the left edge every key it may look at (itself and
earlier ones) is padding, so its attention row is entirely masked. In training PyTorch's attention returns zeros for
such rows, but in evaluation (`eval()` + `no_grad`, the encoder layer's fused fast path) the row's softmax over
nothing is NaN; the NaN of the padding positions then reaches every position through the next block's values (0
weight x NaN = NaN). Training looks normal; every validation loss is NaN and the validation ranking is garbage.
Otherwise the same script as healthy_sasrec_next_item_left_padded_sessions (timeline mask, tied item embeddings,
Adam + linear warm-up, clipping). Symptom: val loss nan, val HR@10 0.13 vs 3.42 / 0.68 with the causal mask alone."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout6"
ITEMS, MAXLEN = 100, 20


def sessions(n, seed):
    g = torch.Generator().manual_seed(seed)
    succ = torch.randint(1, ITEMS + 1, (ITEMS + 1, 4), generator=torch.Generator().manual_seed(0))
    seqs = torch.zeros(n, MAXLEN + 1, dtype=torch.long)
    for i in range(n):
        k = int(torch.randint(5, MAXLEN + 2, (1,), generator=g))
        s = [int(torch.randint(1, ITEMS + 1, (1,), generator=g))]
        for _ in range(k - 1):
            if torch.rand(1, generator=g) < 0.8:
                s.append(int(succ[s[-1], torch.randint(0, 4, (1,), generator=g)]))
            else:
                s.append(int(torch.randint(1, ITEMS + 1, (1,), generator=g)))
        seqs[i, MAXLEN + 1 - k:] = torch.tensor(s)  # left padding
    return seqs[:, :-1], seqs[:, 1:]


class SASRec(L.LightningModule):
    def __init__(self, dim=64, heads=2, blocks=2, lr=5e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.item_emb = nn.Embedding(ITEMS + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(MAXLEN, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.2, batch_first=True, norm_first=True)
            for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(0.2)
        self.register_buffer("causal", torch.triu(torch.ones(MAXLEN, MAXLEN, dtype=torch.bool), 1), persistent=False)

    def forward(self, seq):
        keep = (seq != 0).unsqueeze(-1).float()
        h = self.item_emb(seq) * self.hparams.dim ** 0.5 + self.pos_emb.weight[: seq.shape[1]]
        h = self.drop(h) * keep
        for block in self.blocks:
            h = block(h, src_mask=self.causal, src_key_padding_mask=seq == 0) * keep
        return self.norm(h) @ self.item_emb.weight.T

    def _step(self, batch, stage):
        seq, target = batch
        logits = self(seq)
        loss = F.cross_entropy(logits.reshape(-1, ITEMS + 1), target.reshape(-1), ignore_index=0)
        self.log(f"{stage}_loss", loss, prog_bar=stage == "val")
        if stage == "val":
            last = logits[:, -1, 1:].topk(10, dim=-1).indices + 1
            self.log("val_hr10", (last == target[:, -1:]).any(-1).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=self.hparams.warmup)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(611)
    train = DataLoader(TensorDataset(*sessions(1500, seed=1)), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(*sessions(400, seed=2)), batch_size=200)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SASRec(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_HR@10={m['val_hr10']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
