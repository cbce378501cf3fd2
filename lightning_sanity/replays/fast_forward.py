"""Re-run a seeded fit up to a reported epoch and batch and keep that batch: :class:`FastForward`."""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch.callbacks import Callback
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor
from typing_extensions import override


class FastForward(Callback):
    """Re-run a seeded fit up to ``(epoch, batch_idx)`` and keep that batch, then stop.

    Seed as the original run did (``lightning.seed_everything(seed, workers=True)`` before building the model
    and data), build everything the same way, and fit with this callback: with the same seed the same batch comes
    out of the same dataloader at the same epoch and batch index. The fit stops once that step has run;
    ``batch`` (on the CPU) and ``model_state`` (weights at the start of that step) are then set.

    Args:
        epoch: the finding's ``epoch``.
        batch_idx: the finding's ``batch_idx``.

    Raises:
        ValueError: a negative or non-integer epoch or batch index.

    Example::

        >>> ff = FastForward(epoch=3, batch_idx=17)
        >>> ff.batch is None
        True
    """

    def __init__(self, epoch: int, batch_idx: int) -> None:
        for name, value in (("epoch", epoch), ("batch_idx", batch_idx)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`FastForward` got {name}={value!r}; expected a non-negative integer.")
        self.epoch, self.batch_idx = epoch, batch_idx
        self.batch: Any = None
        self.model_state: Optional[dict[str, Tensor]] = None

    @override
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch_idx and self.batch is None:
            self.batch = apply_to_collection(batch, Tensor, lambda t: t.detach().cpu().clone())
            self.model_state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
            trainer.should_stop = True
