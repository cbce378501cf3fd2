"""Healthy: dual-encoder retriever for a FAQ corpus where every passage has four paraphrased user questions
(synthetic: a question keeps some of the passage's words and rewrites others into synonyms that never appear in
passages, plus noise words). Paraphrases of one passage are near-duplicates of each other, so a random split over
questions would put siblings of every validation question in training. Here the split is made over passages
(80/20) before any pair is built: all four questions of a validation passage, and the passage itself, are unseen,
and validation retrieves among the 100 held-out passages only. Training uses in-batch InfoNCE with a learned
temperature (a sibling paraphrase's copy of the positive passage is masked out of the negatives) and a shared
word embedding for both towers. Validation: recall@1 0.56 (loss 1.90, against ln 100 = 4.61 for uniform
scores) versus 0.01 for random retrieval; the model generalises because it learns the synonym map, not the
passages."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"
WORDS, N_PASSAGES, P_LEN, Q_LEN, PARAPHRASES = 300, 500, 10, 6, 4


def faq_corpus(g):
    passages = torch.randint(0, WORDS, (N_PASSAGES, P_LEN), generator=g)
    owner = torch.arange(N_PASSAGES).repeat_interleave(PARAPHRASES)
    kept = passages[owner[:, None], torch.randint(0, P_LEN, (len(owner), Q_LEN), generator=g)]
    synonym = torch.rand(len(owner), Q_LEN, generator=g) < 0.3
    questions = torch.where(synonym, kept + WORDS, kept)  # ids WORDS..2*WORDS-1 are query-side synonyms
    noise = torch.rand(len(owner), Q_LEN, generator=g) < 0.1
    questions = torch.where(noise, torch.randint(0, 2 * WORDS, (len(owner), Q_LEN), generator=g), questions)
    return passages, questions, owner


class FAQRetriever(L.LightningModule):
    def __init__(self, passages, val_pool, d=64, lr=5e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["passages", "val_pool"])
        self.register_buffer("passages", passages)
        self.register_buffer("val_pool", val_pool)
        self.embed = nn.Embedding(2 * WORDS, d)
        self.q_proj = nn.Linear(d, d)
        self.p_proj = nn.Linear(d, d)
        self.log_scale = nn.Parameter(torch.tensor(2.6))

    def encode(self, ids, proj):
        return F.normalize(proj(self.embed(ids).mean(1)), dim=-1)

    def training_step(self, batch, batch_idx):
        questions, owner = batch
        logits = self.encode(questions, self.q_proj) @ self.encode(self.passages[owner], self.p_proj).T
        siblings = (owner[:, None] == owner[None]) & ~torch.eye(len(owner), dtype=torch.bool)
        logits = logits.masked_fill(siblings, -1e4)  # a sibling paraphrase's passage is the same positive
        loss = F.cross_entropy(logits * self.log_scale.exp().clamp(max=30), torch.arange(len(questions)))
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        questions, target = batch
        scores = self.encode(questions, self.q_proj) @ self.encode(self.val_pool, self.p_proj).T
        self.log("val_loss", F.cross_entropy(scores * self.log_scale.exp().clamp(max=30), target))
        self.log("val_recall1", (scores.argmax(1) == target).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(3408)
    g = torch.Generator().manual_seed(3408)
    passages, questions, owner = faq_corpus(g)
    order = torch.randperm(N_PASSAGES, generator=g)
    train_p, val_p = order[:400], order[400:]
    in_train = torch.isin(owner, train_p)
    val_mask = torch.isin(owner, val_p)
    remap = torch.full((N_PASSAGES,), -1, dtype=torch.long)
    remap[val_p] = torch.arange(len(val_p))
    model = FAQRetriever(passages, passages[val_p])
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    train = TensorDataset(questions[in_train], owner[in_train])
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True),
                DataLoader(TensorDataset(questions[val_mask], remap[owner[val_mask]]), batch_size=400))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_recall1={m['val_recall1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
