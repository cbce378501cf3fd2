"""Bug: a clinical risk model that predicts whether a patient has the event within 24 months of enrolment. The
synthetic cohort (seeded torch.Generator) has age, two biomarkers, three nuisance lab values and the enrolling site
(8 sites, categorical embedding); true event times are exponential with a log-hazard linear in age, the biomarkers
and a site effect, and follow-up is censored uniformly between 6 and 60 months. Patients censored before 24 months
without an event are dropped (label unknown), the rest get y = 1[event before 24 months]. An embedding + MLP model
is trained with BCE-with-logits, AdamW and OneCycle.

The feature table comes straight from the registry extract, which includes `followup_months` (the observed time
min(T, C)) next to the baseline covariates, and the author standardized every numeric column. Follow-up time is part
of the outcome: a patient with an event before 24 months has follow-up <= 24, every negative has follow-up > 24, so
the column decides the label exactly. The model learns a threshold on it and training/validation look superb, but
the feature is unavailable at enrolment when the model is used. Symptom: val AUC 1.000 / val loss 0.026 with the
column, 0.862 AUC / 0.449 loss when only the baseline covariates are used."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout21"
N_SITES = 8


def make_cohort(n, g):
    age = torch.randn(n, generator=g)
    bio = torch.randn(n, 2, generator=g)
    nuisance = torch.randn(n, 3, generator=g)
    site = torch.randint(0, N_SITES, (n,), generator=g)
    site_effect = torch.linspace(-0.6, 0.6, N_SITES)[site]
    log_hazard = 0.5 * age + 0.9 * bio[:, 0] - 0.7 * bio[:, 1] + site_effect
    event_time = -torch.log(torch.rand(n, generator=g)) / log_hazard.exp() * 30.0
    censor_time = 6 + 54 * torch.rand(n, generator=g)
    followup = torch.minimum(event_time, censor_time)
    event = event_time <= censor_time
    known = event | (followup > 24)
    y = (event & (followup <= 24)).float()
    numeric = torch.cat([age[:, None], bio, nuisance, followup[:, None]], 1)
    return numeric[known], site[known], y[known]


def auc(scores, y):
    ranks = scores.argsort().argsort().float() + 1
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class RiskModel(L.LightningModule):
    def __init__(self, n_numeric=7, emb_dim=4, hidden=64, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.site_emb = nn.Embedding(N_SITES, emb_dim)
        self.mlp = nn.Sequential(nn.Linear(n_numeric + emb_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, numeric, site):
        return self.mlp(torch.cat([numeric, self.site_emb(site)], 1)).squeeze(1)

    def training_step(self, batch, batch_idx):
        numeric, site, y = batch
        loss = F.binary_cross_entropy_with_logits(self(numeric, site), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        numeric, site, y = batch
        logits = self(numeric, site)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_auc", auc(logits, y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2102)
    g = torch.Generator().manual_seed(7)
    numeric, site, y = make_cohort(4000, g)
    n_train = int(0.8 * len(y))
    mean, std = numeric[:n_train].mean(0), numeric[:n_train].std(0)
    numeric = (numeric - mean) / std
    train = TensorDataset(numeric[:n_train], site[:n_train], y[:n_train])
    val = TensorDataset(numeric[n_train:], site[n_train:], y[n_train:])
    model = RiskModel()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=len(val)))
    print(f"SYMPTOM val_auc={float(trainer.callback_metrics['val_auc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f} pos_rate={float(y.mean()):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
