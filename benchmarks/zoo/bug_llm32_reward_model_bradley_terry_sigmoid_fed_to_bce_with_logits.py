"""Bug: a reward model for RLHF, trained on pairwise preferences with the Bradley-Terry loss. The backbone is a small
causal Transformer that reads `BOS prompt SEP response EOS` and scores the sequence from the hidden state of the
last token. Prompts are 6 random digits; the preferred response is the prompt sorted, the other one the same sorted
list with one adjacent pair swapped (a "near miss"); 15 % of the pairs have the annotation flipped (annotator noise),
so the best achievable pairwise accuracy is 0.85 and the best BT log-loss is H(0.15) = 0.42. The loss is written with
BCE-with-logits on the reward margin, but the margin is passed through `torch.sigmoid` first ("the preference
probability"): `F.binary_cross_entropy_with_logits(torch.sigmoid(r_c - r_r), ones)`. A probability in (0, 1) is fed
where a logit is expected: the loss is squashed into (0.31, 0.69) and, because sigmoid(sigmoid(m)) never reaches 1,
the noisy pairs can never pull the margins back; margins grow without bound and the rewards become overconfident.

Why training still "works": AdamW rescales the small gradients, the loss goes down and pairwise accuracy is as good
as the fixed model's. Measured against the fixed version (BCE-with-logits on the raw margin, i.e. -logsigmoid) after
the same 6 epochs: val pairwise accuracy 0.85 vs 0.82, but the true Bradley-Terry log-loss of the learned rewards on
validation pairs is 1.34 with the bug vs 0.50 fixed (0.42 optimal), i.e. reward margins are badly miscalibrated."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout32"
BOS, SEP, EOS, DIGIT0 = 0, 1, 2, 3
VOCAB, N = 13, 6


class Preferences(Dataset):
    def __init__(self, n, g):
        prompts = torch.randint(0, 10, (n, N), generator=g)
        chosen = prompts.sort(1).values
        rejected = chosen.clone()
        for i, j in enumerate(torch.randint(0, N - 1, (n,), generator=g).tolist()):
            rejected[i, [j, j + 1]] = chosen[i, [j + 1, j]]
            if torch.equal(rejected[i], chosen[i]):
                rejected[i] = chosen[i].flip(0)
        keep = (rejected != chosen).any(1)
        flip = (torch.rand(n, generator=g) < 0.15)[:, None]
        chosen, rejected = torch.where(flip, rejected, chosen), torch.where(flip, chosen, rejected)
        self.prompts, self.chosen, self.rejected = prompts[keep], chosen[keep], rejected[keep]

    def __len__(self):
        return len(self.prompts)

    def _seq(self, p, r):
        return torch.cat([torch.tensor([BOS]), p + DIGIT0, torch.tensor([SEP]), r + DIGIT0, torch.tensor([EOS])])

    def __getitem__(self, i):
        c, r = self._seq(self.prompts[i], self.chosen[i]), self._seq(self.prompts[i], self.rejected[i])
        return {"chosen_input_ids": c, "rejected_input_ids": r}


class RewardModel(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(2 * N + 3, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_f, self.score = nn.LayerNorm(d), nn.Linear(d, 1)

    def forward(self, input_ids):
        t = input_ids.shape[1]
        h = self.body(self.tok(input_ids) + self.pos(torch.arange(t)),
                      mask=nn.Transformer.generate_square_subsequent_mask(t), is_causal=True)
        return self.score(self.ln_f(h[:, -1])).squeeze(-1)

    def _margin_loss(self, batch):
        margin = self(batch["chosen_input_ids"]) - self(batch["rejected_input_ids"])
        p_prefer = torch.sigmoid(margin)
        loss = F.binary_cross_entropy_with_logits(p_prefer, torch.ones_like(p_prefer))
        return margin, loss

    def training_step(self, batch, batch_idx):
        _, loss = self._margin_loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        margin, loss = self._margin_loss(batch)
        self.log_dict({"val_loss": loss, "val_pair_acc": (margin > 0).float().mean(),
                       "val_bt_nll": -F.logsigmoid(margin).mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1,
                                                  total_iters=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3205)
    g = torch.Generator().manual_seed(325)
    train, val = Preferences(3000, g), Preferences(400, g)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RewardModel(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_pair_acc={float(m['val_pair_acc']):.3f} val_bt_nll={float(m['val_bt_nll']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
