"""Bug: Lightning's own ``BoringModel`` (``lightning.pytorch.demos.boring_classes``), trained as shipped.

Its SGD step (lr 0.1) on batches of one 32-wide standard-normal sample, with a mean squared error over two
outputs, multiplies the error by about 1 - 0.1 * ||x||^2 = 1 - 3.2 per step: gradient descent diverges. Measured:
the training loss rises from 0.56 before the first update to about 1e4 by the end of the first epoch; the same
model at lr 0.01 (``healthy_lightning_boring_model_lr_0_01.py``) falls to 1e-3.
"""
import lightning as L
from lightning.pytorch.demos.boring_classes import BoringModel

import lightning_sanity

EXPECT = ["loss-trend", "exploding-gradient", "update-ratio", "weight-growth"]
SPLIT = "third-party"

if __name__ == "__main__":
    L.seed_everything(0)
    trainer = L.Trainer(max_epochs=1, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, default_root_dir=".")
    trainer.fit(BoringModel())
    print(f"LOG_DIR={trainer.log_dir}")
