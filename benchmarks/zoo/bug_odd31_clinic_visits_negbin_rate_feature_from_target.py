"""Bug: negative-binomial regression of outpatient visit counts. Each synthetic patient has covariates (age, a
comorbidity score, smoker flag, distance to clinic), a follow-up exposure in years, and a latent frailty; visits in
the follow-up window are negative-binomial with mean exposure * exp(x.beta) * frailty. The model predicts log-rate,
adds log(exposure) as an offset and learns a dispersion through softplus; the loss is the exact NB log-likelihood
via `torch.distributions.NegativeBinomial`. A useful engineered feature is the patient's *previous-year* visit
rate (`prior_visits / prior_exposure`), which carries the frailty. The mistake: the feature builder computes the
rate from the wrong columns, `visits / exposure` -- the target of this very row divided by its own exposure --
so log1p(rate) together with the offset pins down the count. Everything trains smoothly and validation (same
feature pipeline) looks superb; in deployment the current window's visits are not known.
Measured: buggy val NB-NLL 0.87 (val MAE 0.20 visits); with the prior-year rate the val NB-NLL is 1.23 (MAE 0.88)."""

import lightning as L
import torch
from torch import nn
from torch.distributions import NegativeBinomial
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout31"


def simulate(n, gen):
    age = 20 + 60 * torch.rand(n, generator=gen)
    comorb = torch.poisson(torch.full((n,), 1.5), generator=gen)
    smoker = (torch.rand(n, generator=gen) < 0.25).float()
    distance = 30 * torch.rand(n, generator=gen)
    frailty = torch.distributions.Gamma(2.0, 2.0).sample((n,))
    log_rate = -0.5 + 0.02 * (age - 50) + 0.35 * comorb + 0.3 * smoker - 0.03 * distance
    exposure = 0.25 + 1.75 * torch.rand(n, generator=gen)
    prior_exposure = torch.ones(n)
    visits = torch.poisson(exposure * log_rate.exp() * frailty, generator=gen)
    prior_visits = torch.poisson(prior_exposure * log_rate.exp() * frailty, generator=gen)
    return dict(age=age, comorb=comorb, smoker=smoker, distance=distance, exposure=exposure,
                prior_exposure=prior_exposure, visits=visits, prior_visits=prior_visits)


def build_features(t):
    rate = t["visits"] / t["exposure"]
    return torch.stack([t["age"], t["comorb"], t["smoker"], t["distance"], torch.log1p(rate)], 1)


class VisitNB(L.LightningModule):
    def __init__(self, n_features=5, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 32), nn.Tanh(), nn.Linear(32, 1))
        self.raw_dispersion = nn.Parameter(torch.zeros(()))

    def dist(self, x, log_exposure):
        log_mu = self.net(x).squeeze(-1) + log_exposure
        r = nn.functional.softplus(self.raw_dispersion) + 1e-4
        # NB(total_count=r, logits=log mu - log r) has mean mu
        return NegativeBinomial(total_count=r, logits=log_mu - r.log())

    def training_step(self, batch, batch_idx):
        x, log_exp, y = batch
        loss = -self.dist(x, log_exp).log_prob(y).mean()
        self.log("train_nll", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, log_exp, y = batch
        d = self.dist(x, log_exp)
        self.log("val_nll", -d.log_prob(y).mean())
        self.log("val_mae", (d.mean - y).abs().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(17)
    gen = torch.Generator().manual_seed(17)
    table = simulate(2000, gen)
    x = build_features(table)
    log_exp, y = table["exposure"].log(), table["visits"]
    tr, va = slice(0, 1600), slice(1600, None)
    mu, sd = x[tr].mean(0), x[tr].std(0)
    x = (x - mu) / sd
    train = DataLoader(TensorDataset(x[tr], log_exp[tr], y[tr]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[va], log_exp[va], y[va]), batch_size=400)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(VisitNB(), train, val)
    print(f"SYMPTOM val_nll={trainer.callback_metrics['val_nll'].item():.3f} "
          f"val_mae={trainer.callback_metrics['val_mae'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
