"""The recipes' data: the first batches of the training loader, taken without moving the user's random state.

Also :func:`zero_inputs`, the same batch with its input set to zeros, for the input-independent baseline.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader, move_data_to_device
from lightning_sanity.replays.rng import isolate_rng

from lightning_sanity.batch import BatchFn, split_batch
from lightning_sanity.checks.numerics import tensors_in


def _train_loader(source: Any) -> tuple[Iterable, bool]:
    """The training loader of ``source``, and whether it is a CombinedLoader (which yields ``(batch, idx, idx)``)."""
    if isinstance(source, pl.LightningDataModule):
        # What the Trainer does before fit; a datamodule that downloads does so into its own folder.
        source.prepare_data()
        source.setup("fit")
        loader = source.train_dataloader()
    else:
        loader = source
    several = isinstance(loader, Mapping) or (
        isinstance(loader, (list, tuple)) and loader and all(isinstance(i, torch.utils.data.DataLoader) for i in loader)
    )
    if several:  # several training loaders: the Trainer combines them the same way
        loader = CombinedLoader(loader, "max_size_cycle")
    if isinstance(loader, torch.Tensor) or not isinstance(loader, Iterable):
        raise ValueError(
            f"`datamodule_or_loader` must be a LightningDataModule, a DataLoader or an iterable of batches, "
            f"got {type(source).__name__}."
        )
    return loader, isinstance(loader, CombinedLoader)


def _generators(loader: Any) -> list[torch.Generator]:
    found: list[torch.Generator] = []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def _seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def _take_batches(source: Any, count: int, seed: int) -> list[Any]:
    """The first ``count`` batches of the training loader, without moving any random state the user owns."""
    loader, combined = _train_loader(source)
    generators = _generators(loader)
    states = [g.get_state() for g in generators]
    batches: list[Any] = []
    try:
        with isolate_rng():
            _seed_all(seed)
            iterator = iter(loader)
            for batch in iterator:
                batches.append(batch[0] if combined else batch)
                if len(batches) == count:
                    break
            del iterator
    finally:
        # A loader with its own generator would otherwise shuffle differently in the user's next epoch.
        for gen, state in zip(generators, states):
            gen.set_state(state)
    if not batches:
        raise ValueError("`datamodule_or_loader` gave no batch: the training loader is empty.")
    return batches


def _to_device(module: pl.LightningModule, batch: Any) -> Any:
    device = module.device
    try:
        batch = module.on_before_batch_transfer(batch, 0)
        batch = module.transfer_batch_to_device(batch, device, 0)
        return module.on_after_batch_transfer(batch, 0)
    except RuntimeError as err:
        if "not attached to a `Trainer`" not in str(err):
            raise
        return move_data_to_device(batch, device)


def _replace_tensors(batch: Any, targets: list[torch.Tensor], make: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``batch`` with every tensor that *is* one of ``targets`` replaced by ``make(tensor)``."""
    if isinstance(batch, torch.Tensor):
        return make(batch) if any(batch is t for t in targets) else batch
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_replace_tensors(v, targets, make) for v in batch))
    if isinstance(batch, Mapping):
        try:
            return type(batch)({k: _replace_tensors(v, targets, make) for k, v in batch.items()})
        except TypeError:
            return {k: _replace_tensors(v, targets, make) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_replace_tensors(v, targets, make) for v in batch)
    return batch


def _tensors_in(value: Any) -> list[torch.Tensor]:
    return [t for _, t in tensors_in(value)]


def zero_inputs(batch: Any, get_input: BatchFn = None) -> Any:
    """The same batch with its input (as :func:`lightning_sanity.batch.split_batch` finds it) set to zeros.

    Raises:
        ValueError: no input tensor found, or ``get_input`` returned a tensor that is not part of the batch.

    Example::

        >>> x, y = zero_inputs((torch.ones(2, 3), torch.tensor([0, 1])))
        >>> x.sum().item(), y.tolist()
        (0.0, [0, 1])
    """
    x, _ = split_batch(batch, get_input=get_input)
    found = _tensors_in(x)
    if not found:
        raise ValueError(
            "The recipe found no input tensor in the batch; pass `get_input=lambda batch: ...` returning the "
            "input tensor (it must be a tensor held in the batch, not a new one)."
        )
    zeroed = _replace_tensors(batch, found, torch.zeros_like)
    if not any(t is not z for t, z in zip(_tensors_in(batch), _tensors_in(zeroed))):
        raise ValueError(
            "`get_input` returned a tensor that is not held in the batch, so the recipe cannot zero it in place; "
            "make `get_input` return the batch's own input tensor (e.g. `lambda b: b['pixels']`)."
        )
    return zeroed
