"""Healthy: Lightning's own ``BoringModel`` with a stable learning rate (SGD 0.01, its StepLR kept at gamma 0.9).

As shipped, ``BoringModel`` diverges (``bug_lightning_boring_model_as_shipped.py``): lr 0.1 times ||x||^2 = 32 is
past SGD's stability limit on batches of one sample. At lr 0.01 the model learns to output the constant target 1:
the training loss falls from 0.56 to about 1e-3 over three epochs.
"""
import lightning as L
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

import lightning_sanity

EXPECT = None
SPLIT = "third-party"


class StableBoringModel(BoringModel):
    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.01)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)]


if __name__ == "__main__":
    L.seed_everything(0)
    trainer = L.Trainer(max_epochs=3, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, default_root_dir=".")
    trainer.fit(StableBoringModel())
    print(f"LOG_DIR={trainer.log_dir}")
