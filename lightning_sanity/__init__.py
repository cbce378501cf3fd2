"""lightning_sanity: Lightning callbacks that catch the silent bugs of neural-network training.

Example::

    import lightning as L
    import lightning_sanity

    trainer = L.Trainer(callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule)
    report = lightning_sanity.load_report(trainer.log_dir)

Names are imported on first use, so ``import lightning_sanity`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "default_callbacks": "lightning_sanity.suite",
    "available_options": "lightning_sanity.suite",
    "available_thresholds": "lightning_sanity.suite",
    "load_report": "lightning_sanity.report",
    "replay": "lightning_sanity.replays",
    "ReplayResult": "lightning_sanity.replays",
    "overfit_one_batch": "lightning_sanity.recipes",
    "input_independent_baseline": "lightning_sanity.recipes",
    "RecipeVerdict": "lightning_sanity.recipes",
    "SanitySummary": "lightning_sanity.callbacks.summary",
    "TrainModeMonitor": "lightning_sanity.callbacks.train_mode",
    "LossInspector": "lightning_sanity.callbacks.loss_inspector",
    "DataChecks": "lightning_sanity.callbacks.data_checks",
    "ModelChecks": "lightning_sanity.callbacks.model_checks",
    "NormMonitor": "lightning_sanity.callbacks.norms",
    "ActivationMonitor": "lightning_sanity.callbacks.activations",
    "NonFiniteSentinel": "lightning_sanity.callbacks.nonfinite",
    "BatchNormMonitor": "lightning_sanity.callbacks.batchnorm",
    "PredictionDynamics": "lightning_sanity.callbacks.predictions",
    "LossDynamics": "lightning_sanity.callbacks.loss_dynamics",
    "LeakageChecks": "lightning_sanity.callbacks.leakage",
    "SplitOverlap": "lightning_sanity.callbacks.split_overlap",
    "ValDivergence": "lightning_sanity.callbacks.val_divergence",
    "SanityCallback": "lightning_sanity.callbacks.base",
    "Threshold": "lightning_sanity.callbacks.base",
    "Finding": "lightning_sanity.findings",
    "Severity": "lightning_sanity.findings",
    "CHECKS": "lightning_sanity.findings",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lightning_sanity' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from lightning_sanity.callbacks.activations import ActivationMonitor
    from lightning_sanity.callbacks.batchnorm import BatchNormMonitor
    from lightning_sanity.callbacks.data_checks import DataChecks
    from lightning_sanity.callbacks.leakage import LeakageChecks
    from lightning_sanity.callbacks.loss_dynamics import LossDynamics
    from lightning_sanity.callbacks.loss_inspector import LossInspector
    from lightning_sanity.callbacks.model_checks import ModelChecks
    from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
    from lightning_sanity.callbacks.norms import NormMonitor
    from lightning_sanity.callbacks.predictions import PredictionDynamics
    from lightning_sanity.callbacks.split_overlap import SplitOverlap
    from lightning_sanity.callbacks.train_mode import TrainModeMonitor
    from lightning_sanity.callbacks.val_divergence import ValDivergence
    from lightning_sanity.callbacks.base import SanityCallback, Threshold
    from lightning_sanity.callbacks.summary import SanitySummary
    from lightning_sanity.findings import CHECKS, Finding, Severity
    from lightning_sanity.recipes import RecipeVerdict, input_independent_baseline, overfit_one_batch
    from lightning_sanity.replays import ReplayResult, replay
    from lightning_sanity.report import load_report
    from lightning_sanity.suite import available_options, available_thresholds, default_callbacks
