"""Bug: a GPT-style synthesizer for tabular data (GReaT / TabGPT flavour). Ten breast-cancer columns are quantised
into 8 quantile bins each (bin edges fitted on the training rows), every row becomes a 10-token sequence (one
vocabulary slice per column, a BOS token in front), and a decoder-only transformer learns p(col_j | col_<j) so that
new rows can be sampled column by column. The model is built from `nn.TransformerDecoder` because "a GPT is a
decoder", and since a decoder layer insists on a `memory` argument the embeddings themselves are passed as memory:
`self.decoder(h, memory=h, tgt_mask=causal)`. The causal mask only covers self-attention; the cross-attention block
reads the whole row, so position j sees the very token it has to predict. Teacher-forced validation NLL looks superb,
but the model is useless for sampling, where the future columns do not exist yet.
Symptom: teacher-forced val NLL 0.35 nats/column (suspiciously good; uniform is 2.08) but 4.78 nats/column when
each column is predicted from its prefix only (as in sampling), vs 1.87 / 1.87 with `memory` left out (a
TransformerEncoder with the same causal mask)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout15"
N_COLS, N_BINS = 10, 8
BOS = N_COLS * N_BINS


def tokenize(x, edges):
    """x: (n, N_COLS) floats -> (n, N_COLS) token ids, column j uses ids [j*N_BINS, (j+1)*N_BINS)."""
    bins = torch.stack([torch.bucketize(x[:, j].contiguous(), edges[j]) for j in range(N_COLS)], 1)
    return bins + torch.arange(N_COLS) * N_BINS


class TabGPT(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(BOS + 1, d)
        self.pos = nn.Parameter(torch.randn(N_COLS, d) * 0.02)
        layer = nn.TransformerDecoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, BOS)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(N_COLS))

    def forward(self, tokens):
        # inputs: BOS + the first N_COLS-1 columns; outputs at position j predict column j
        inp = torch.cat([torch.full_like(tokens[:, :1], BOS), tokens[:, :-1]], 1)
        L_ = inp.shape[1]
        h = self.tok(inp) + self.pos[:L_]
        h = self.decoder(h, memory=h, tgt_mask=self.causal[:L_, :L_])
        return self.head(self.norm(h))

    def nll(self, tokens):
        logits = self(tokens)
        # restrict each position to its own column's vocabulary slice
        col_mask = torch.full((N_COLS, BOS), float("-inf"), device=logits.device)
        for j in range(N_COLS):
            col_mask[j, j * N_BINS:(j + 1) * N_BINS] = 0.0
        logits = logits + col_mask
        return F.cross_entropy(logits.reshape(-1, BOS), tokens.reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self.nll(batch[0])
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch[0]), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        return opt


@torch.no_grad()
def prefix_only_nll(model, tokens):
    """What sampling sees: column j is predicted from columns < j, later columns replaced by a dummy token."""
    model.eval()
    total = 0.0
    for j in range(N_COLS):
        masked = tokens.clone()
        masked[:, j:] = torch.arange(j, N_COLS) * N_BINS  # bin 0 of each later column (unknown at sampling time)
        logits = model(masked)[:, j, j * N_BINS:(j + 1) * N_BINS]
        total += F.cross_entropy(logits, tokens[:, j] - j * N_BINS).item()
    return total / N_COLS


def main():
    L.seed_everything(15)
    data = load_breast_cancer()
    x = torch.tensor(data.data[:, :N_COLS], dtype=torch.float32)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:455], perm[455:]
    qs = torch.linspace(0, 1, N_BINS + 1)[1:-1]
    edges = [torch.quantile(x[tr, j], qs) for j in range(N_COLS)]
    tok_tr, tok_va = tokenize(x[tr], edges), tokenize(x[va], edges)
    train_dl = DataLoader(TensorDataset(tok_tr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(tok_va), batch_size=128)

    model = TabGPT()
    trainer = L.Trainer(max_epochs=40, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="tabgpt_synth"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    with torch.no_grad():
        tf = model.nll(tok_va).item()
    print(f"SYMPTOM teacher_forced_val_nll={tf:.3f}")
    print(f"SYMPTOM prefix_only_val_nll={prefix_only_nll(model, tok_va):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
