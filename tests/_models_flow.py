"""Models for the model-checks and train-mode tests that must be importable by name (under ``ddp_spawn``)."""

import torch
from helpers import Classifier


class MixingHalfOptimized(Classifier):
    """Two bugs at once: the batch is mixed by a reshape in forward, and the last layer is in no optimizer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net[1](self.net[0](x))
        h = h.t().reshape(h.shape)  # bug: should be a per-sample operation
        return self.net[2](h)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net[0].parameters(), lr=1e-2)  # bug: net.2 left out

