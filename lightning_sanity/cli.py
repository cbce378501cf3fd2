"""The ``lightning-sanity`` command line (also ``python -m lightning_sanity``).

Subcommands:

- ``report LOG_DIR [--format text|md|json] [--fail-on never|warn|fail]``: print a run's sanity summary again.
- ``replay BUNDLE --model pkg.mod:Class``: replay a non-finite bundle on a fresh instance of the model.
- ``overfit pkg.mod:Class --data pkg.mod:factory [--steps N] [--out DIR]``: the overfit-one-batch recipe.
- ``baseline pkg.mod:Class --data pkg.mod:factory [--steps N] [--out DIR]``: the input-independent baseline.

Exit codes: 0 success (report printed, recipe passed, non-finite reproduced); 1 a negative answer (recipe failed,
not reproduced, ``--fail-on`` reached); 2 bad input (wrong import path, missing file, report of another schema,
bad option); 3 the user's own code raised (the traceback is printed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

EXIT_OK, EXIT_NEGATIVE, EXIT_USAGE, EXIT_USER_CODE = 0, 1, 2, 3


class UsageError(Exception):
    """A problem with what was typed: printed as one line, exit code 2."""


class UserCodeError(Exception):
    """The user's model or data code raised: the traceback is printed, exit code 3."""


def _check_spec(spec: str, what: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{what} {spec!r} is not of the form MODULE:NAME (e.g. `my_project.models:Net`).")
    return module_name, attr


def _import_object(spec: str, what: str) -> Any:
    """``pkg.mod:Name`` -> the object, or a UsageError naming the problem and the fix."""
    module_name, attr = _check_spec(spec, what)
    if os.getcwd() not in sys.path and "" not in sys.path:
        # The console script does not put the working folder on sys.path as `python -m` does; do it, so
        # `lightning-sanity overfit models:Net` works from the project root either way.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise UsageError(
                f"cannot import module {module_name!r} for {what} {spec!r} ({err}); check the dotted path and run "
                "from the folder that holds it or add that folder to PYTHONPATH."
            ) from None
        raise UserCodeError(f"importing {module_name!r} failed") from err
    except Exception as err:
        raise UserCodeError(f"importing {module_name!r} failed") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(
                f"module {module_name!r} has no attribute {attr!r} (for {what} {spec!r}); check the name after the colon."
            )
        obj = getattr(obj, part)
    return obj


def _build_model(spec: str, hparams: Optional[dict[str, Any]] = None) -> Any:
    cls = _import_object(spec, "the model")
    import lightning.pytorch as pl  # after the user's module: a wrong path fails without this slow import

    if not callable(cls):
        raise UsageError(f"{spec!r} is not a class; pass MODULE:CLASS of a LightningModule.")
    try:
        model = cls(**(hparams or {}))
    except TypeError as err:
        given = f"the saved hyperparameters {sorted(hparams)}" if hparams else "no arguments"
        raise UsageError(
            f"could not build {spec!r} with {given} ({err}); give every __init__ argument a default, or point "
            "at a small factory function that returns the configured model."
        ) from None
    except Exception as err:
        raise UserCodeError(f"building {spec!r} raised") from err
    if not isinstance(model, pl.LightningModule):
        raise UsageError(f"{spec!r} gave a {type(model).__name__}, not a LightningModule.")
    return model


def _build_data(spec: str) -> Any:
    factory = _import_object(spec, "--data")
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    if isinstance(factory, (pl.LightningDataModule, DataLoader)):
        return factory
    if not callable(factory):
        raise UsageError(f"--data {spec!r} is neither a factory function nor a DataModule/DataLoader.")
    try:
        data = factory()
    except TypeError as err:
        raise UsageError(f"could not call --data {spec!r} with no arguments ({err}); give its arguments defaults.") from None
    except Exception as err:
        raise UserCodeError(f"calling --data {spec!r} raised") from err
    return data


# --------------------------------------------------------------------------- subcommands


def _cmd_report(args: argparse.Namespace) -> int:
    from lightning_sanity.report import load_report, render_markdown, render_text

    try:
        report = load_report(args.log_dir)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "md":
        print(render_markdown(report), end="")
    else:
        print(render_text(report), end="")
    order = {"pass": 0, "warn": 1, "fail": 2}
    if args.fail_on != "never" and order.get(report.get("status"), 0) >= order[args.fail_on]:
        return EXIT_NEGATIVE
    return EXIT_OK


def _cmd_replay(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    if not bundle.is_file():
        raise UsageError(f"replay bundle {str(bundle)!r} does not exist; pass the path named in the non-finite "
                         "finding's `replay` field, relative to the run's log dir.")
    from lightning_sanity.replays import load_bundle, replay

    try:
        # The model is rebuilt with the hyperparameters it was trained with, when it saved them.
        hparams = load_bundle(bundle, trusted=args.trusted).get("hparams")
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    model = _build_model(args.model, hparams)
    # The replay's stages (loading, the step, the backward under anomaly detection) as progress lines on stderr.
    stages = logging.StreamHandler(sys.stderr)
    stages.setFormatter(logging.Formatter("%(message)s"))
    replay_log = logging.getLogger("lightning_sanity.replays")
    level = replay_log.level
    replay_log.addHandler(stages)
    replay_log.setLevel(logging.INFO)
    try:
        result = replay(bundle, model, trusted=args.trusted)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from None
    except Exception as err:
        raise UserCodeError("replaying the bundle raised") from err
    finally:
        replay_log.removeHandler(stages)
        replay_log.setLevel(level)
    print(str(result))
    return EXIT_OK if getattr(result, "reproduced", False) else EXIT_NEGATIVE


def _run_recipe(args: argparse.Namespace, recipe_name: str, options: dict[str, Any]) -> int:
    _check_spec(args.model, "the model")
    _check_spec(args.data, "--data")
    model = _build_model(args.model)
    data = _build_data(args.data)
    from lightning_sanity import recipes  # after the user's code: a wrong path fails without the slow imports

    recipe: Callable[..., Any] = getattr(recipes, recipe_name)
    try:
        verdict = recipe(model, data, steps=args.steps, seed=args.seed, out_dir=args.out, **options)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except Exception as err:
        raise UserCodeError(f"the {recipe_name} recipe raised while running the model") from err
    if args.format == "json":
        print(json.dumps({"recipe": verdict.recipe, "passed": verdict.passed, "mode": verdict.mode,
                          "message": verdict.message, "advice": verdict.advice, "figures": verdict.figures,
                          "curves": verdict.curves, "out_dir": str(verdict.out_dir) if verdict.out_dir else None},
                         indent=2, default=str))
    else:
        print(str(verdict))
    return EXIT_OK if verdict.passed else EXIT_NEGATIVE


def _cmd_overfit(args: argparse.Namespace) -> int:
    return _run_recipe(args, "overfit_one_batch", {"batch_size": args.batch_size})


def _cmd_baseline(args: argparse.Namespace) -> int:
    return _run_recipe(args, "input_independent_baseline", {"num_batches": args.batches})


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-sanity",
        description="Sanity checks for PyTorch Lightning training: read a run's report, replay a non-finite step, "
                    "or run the overfit-one-batch and input-independent-baseline recipes on your model.",
        epilog="Exit codes: 0 ok/passed, 1 failed verdict or not reproduced, 2 bad input, 3 your code raised.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("report", help="print a run's sanity summary again",
                       description="Print the summary of a run: LOG_DIR is the run's trainer.log_dir (e.g. "
                                   "lightning_logs/version_0), its sanity/ folder or the summary.json file.")
    p.add_argument("log_dir", metavar="LOG_DIR")
    p.add_argument("--format", choices=("text", "md", "json"), default="text", help="output format (default text)")
    p.add_argument("--fail-on", choices=("never", "warn", "fail"), default="never",
                   help="exit 1 when the report's status is at least this (default never)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("replay", help="replay a non-finite bundle on a fresh model",
                       description="Re-run the step saved in a replay bundle on a fresh instance of the model "
                                   "and say which module and op first went non-finite.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--model", required=True, metavar="MODULE:CLASS",
                   help="the LightningModule class, built with the bundle's saved hyperparameters or none")
    p.add_argument("--trusted", action="store_true",
                   help="allow a bundle whose batch holds custom classes to be unpickled (only bundles you made)")
    p.set_defaults(func=_cmd_replay)

    for name, func, helptext, steps in (
        ("overfit", _cmd_overfit, "can the model drive the loss to ~0 on one small batch?", 500),
        ("baseline", _cmd_baseline, "does the model beat the same model trained on zeroed inputs?", 200),
    ):
        p = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] +
                           " MODEL is built with no arguments; --data names a function (or class) called with no "
                           "arguments that returns a LightningDataModule or a DataLoader.")
        p.add_argument("model", metavar="MODULE:CLASS", help="the LightningModule class, e.g. my_project.models:Net")
        p.add_argument("--data", required=True, metavar="MODULE:FACTORY",
                       help="returns a LightningDataModule or a DataLoader, e.g. my_project.data:make_datamodule")
        p.add_argument("--steps", type=_positive_int, default=steps, help=f"training steps (default {steps})")
        p.add_argument("--seed", type=int, default=None, help="seed of the recipe's random draws (default 0)")
        p.add_argument("--out", default=None, metavar="DIR",
                       help="write DIR/sanity/summary.json and summary.md (default: write nothing)")
        p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
        if name == "overfit":
            p.add_argument("--batch-size", type=_positive_int, default=16,
                           help="samples kept from the first batch (default 16)")
        else:
            p.add_argument("--batches", type=_positive_int, default=4,
                           help="batches of the training loader to cycle through (default 4)")
        p.set_defaults(func=func)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"lightning-sanity {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except UserCodeError as err:
        cause = err.__cause__
        if cause is not None:
            traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
        print(f"lightning-sanity {args.command}: error: {err}: {cause!r}", file=sys.stderr)
        return EXIT_USER_CODE
