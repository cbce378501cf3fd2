"""Verdict recipes: short experiments on a copy of the model that end in pass or fail, with advice.

- :func:`overfit_one_batch`: can the model drive the loss to its floor on one small fixed batch?
- :func:`input_independent_baseline`: does the model do better with its real inputs than with all-zero inputs?

Both train deep copies of the user's LightningModule by calling its own ``configure_optimizers`` and
``training_step`` directly, without a Trainer, and leave the user's model, its optimizer, its modes, the global
random state and the data loader's generator exactly as they were. Both return a :class:`RecipeVerdict` and,
given ``out_dir``, write the suite's ``summary.json``/``summary.md`` to ``<out_dir>/sanity/``.

Example::

    import lightning_sanity.recipes as recipes

    verdict = recipes.overfit_one_batch(MyModel(), my_datamodule, out_dir="sanity_runs/overfit")
    print(verdict)           # PASS/FAIL, the failure mode, the loss curve's key figures, what to try
    verdict.passed, verdict.mode, verdict.losses

Modules: ``overfit`` and ``baseline`` (one recipe each), ``batches`` (taking the loader's batches, zeroing the
input), ``training`` (the copy, its optimizers, its steps), ``verdict`` (:class:`RecipeVerdict`, advice, report).
"""

from lightning_sanity.recipes.baseline import input_independent_baseline
from lightning_sanity.recipes.batches import zero_inputs
from lightning_sanity.recipes.overfit import overfit_one_batch
from lightning_sanity.recipes.verdict import RecipeVerdict

__all__ = ["RecipeVerdict", "input_independent_baseline", "overfit_one_batch", "zero_inputs"]
