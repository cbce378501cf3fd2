"""``default_callbacks``: every check of the suite, configured from one flat set of options."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from lightning.pytorch.callbacks import Callback

from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.findings import validate_check_names


# The suite's check callbacks, in the order they run; the summary always comes last.
_SUITE: tuple[tuple[str, str], ...] = (
    ("lightning_sanity.callbacks.train_mode", "TrainModeMonitor"),
    ("lightning_sanity.callbacks.loss_inspector", "LossInspector"),
    ("lightning_sanity.callbacks.data_checks", "DataChecks"),
    ("lightning_sanity.callbacks.model_checks", "ModelChecks"),
    ("lightning_sanity.callbacks.norms", "NormMonitor"),
    ("lightning_sanity.callbacks.activations", "ActivationMonitor"),
    ("lightning_sanity.callbacks.nonfinite", "NonFiniteSentinel"),
    ("lightning_sanity.callbacks.batchnorm", "BatchNormMonitor"),
    ("lightning_sanity.callbacks.predictions", "PredictionDynamics"),
    ("lightning_sanity.callbacks.loss_dynamics", "LossDynamics"),
    ("lightning_sanity.callbacks.leakage", "LeakageChecks"),
    ("lightning_sanity.callbacks.split_overlap", "SplitOverlap"),
    ("lightning_sanity.callbacks.val_divergence", "ValDivergence"),
)


def _check_callback_classes() -> list[type[SanityCallback]]:
    """The suite's check callbacks, in the order they run (the summary comes last)."""
    return [getattr(importlib.import_module(module), name) for module, name in _SUITE]


def _options_of(cls: type) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def available_options() -> dict[str, tuple[str, Any]]:
    """Every option ``default_callbacks`` takes: ``{name: (callback class name, default)}``."""
    out: dict[str, tuple[str, Any]] = {"disable": ("default_callbacks", ()), "ignore": ("SanitySummary", ()),
                                       "thresholds": ("default_callbacks", None)}
    for cls in [*_check_callback_classes(), SanitySummary]:
        for name, p in _options_of(cls).items():
            out.setdefault(name, (cls.__name__, p.default))
    return out


def available_thresholds() -> dict[str, dict[str, Threshold]]:
    """Every tunable threshold of the suite: ``{check name: {threshold name: Threshold(default, meaning, ...)}}``.

    Example::

        >>> import lightning_sanity
        >>> lightning_sanity.available_thresholds()["exploding-gradient"]["spike"].default
        1000.0
    """
    out: dict[str, dict[str, Threshold]] = {}
    for cls in _check_callback_classes():
        for check, specs in cls.threshold_specs.items():
            out[check] = dict(specs)
    return out


def default_callbacks(
    *, disable: Iterable[str] = (), thresholds: Optional[Mapping[str, Mapping[str, float]]] = None, **options: Any
) -> list[Callback]:
    """Every check of the suite with sensible defaults, plus the summary, as a list for ``Trainer(callbacks=...)``.

    Args:
        disable: check names not to run at all; the summary shows them as skipped.
        thresholds: ``{check name: {threshold name: value}}`` to tune checks; :func:`available_thresholds` lists
            every one with its default and meaning.
        **options: options of the individual callbacks, passed to whichever callback takes them
            (``ignore=[...]`` silences checks; see ``docs/configuration.md`` for every option and its default).

    Raises:
        ValueError: an unknown option or check name; the message lists the valid ones.

    Example::

        >>> import lightning as L
        >>> import lightning_sanity
        >>> callbacks = lightning_sanity.default_callbacks(ignore=["lr-schedule"],
        ...                                                thresholds={"exploding-gradient": {"spike": 1e3}})
        >>> trainer = L.Trainer(callbacks=callbacks, logger=False)
    """
    disabled = set(validate_check_names(disable, "disable"))
    thresholds = dict(thresholds or {})
    validate_check_names(thresholds, "thresholds")
    tunable = available_thresholds()
    untunable = [c for c in thresholds if c not in tunable]
    if untunable:
        raise ValueError(f"`thresholds` got {untunable}, which have no thresholds to tune; checks with thresholds "
                         f"are: {', '.join(tunable)}.")
    valid = available_options()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"`default_callbacks` got unknown option(s) {unknown}; valid options are: {', '.join(sorted(valid))}."
        )
    callbacks: list[Callback] = []
    for cls in [*_check_callback_classes(), SanitySummary]:
        mine = {k: v for k, v in options.items() if k in _options_of(cls)}
        callback = cls(**mine)
        if isinstance(callback, SanityCallback):
            owned = disabled & set(callback.checks)
            if owned == set(callback.checks):
                # Nothing left to run: keep it out of the Trainer, but let the summary say it was switched off.
                continue
            callback.disable(*owned)
            # each check has one home, the one callback that declares its thresholds (update-ratio: NormMonitor)
            callback.set_thresholds({c: v for c, v in thresholds.items() if c in callback.threshold_specs})
        callbacks.append(callback)
    summary = callbacks[-1]
    assert isinstance(summary, SanitySummary)
    summary.switched_off = tuple(sorted(disabled))
    return callbacks
