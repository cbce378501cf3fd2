"""Replay bundles: one file holding everything needed to re-run one training step, and the replay itself.

A bundle is written by the ``non-finite`` and ``batchnorm-variance`` checks to
``<log_dir>/sanity/replay/step_<global_step>.pt`` (:func:`~lightning_sanity.replays.bundle.write_bundle`). It
holds the model's state before the step's update, the batch exactly as ``training_step`` received it, the RNG
states at the start of the step (torch CPU and CUDA, numpy, python), the optimizer and scheduler states, epoch /
batch / step / seed / rank, the Trainer settings ``training_step`` may read, and the library versions. It is a
``torch.save`` file of plain containers and tensors, readable with ``torch.load(..., weights_only=True)`` unless
the batch itself holds custom Python objects.

:func:`replay` loads a bundle into a fresh instance of the user's LightningModule and re-runs that
``training_step`` on the CPU (or the bundle's device), watching every module's output, every torch call and, with
``torch.autograd.detect_anomaly``, every backward op. It runs without a ``Trainer`` on purpose: a Trainer would
run a whole fit loop (dataloaders, optimizers, loggers, other callbacks, validation) that cannot start at an
arbitrary step without private state, and anything it drew from the random generators would change what is being
replayed. A small stand-in answers ``self.trainer.global_step``, ``current_epoch`` and the other recorded
settings; ``self.log`` does nothing during a replay.

Example::

    import lightning_sanity
    result = lightning_sanity.replay("lightning_logs/version_0/sanity/replay/step_212.pt", MyModel())
    print(result)            # what went non-finite first, where, and the autograd op
    result.reproduced, result.module, result.op

:class:`FastForward` re-runs a seeded fit up to a reported epoch and batch and hands back that batch.

Modules:

- ``rng``: the global RNG states, read cheaply at every step and set back for a replay;
- ``bundle``: making, writing and reading a bundle;
- ``run``: :func:`replay`; ``trace`` (what it watches), ``stand_ins`` (the Trainer's stand-in), ``result``
  (:class:`ReplayResult`);
- ``fast_forward``: :class:`FastForward`.
"""

from lightning_sanity.replays.bundle import load_bundle
from lightning_sanity.replays.fast_forward import FastForward
from lightning_sanity.replays.result import ReplayResult
from lightning_sanity.replays.run import replay

__all__ = ["FastForward", "ReplayResult", "load_bundle", "replay"]
