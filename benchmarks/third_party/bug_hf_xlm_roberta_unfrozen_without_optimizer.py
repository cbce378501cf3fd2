"""Bug: gradual unfreezing done by hand: the encoder is frozen before the optimizer is built from the trainable
parameters, and `on_train_epoch_start` sets `requires_grad_(True)` on it at epoch 1 but never adds it to the
optimizer, so the encoder gets gradients and is never updated: only the head trains for the whole run. Otherwise
healthy_hf_xlm_roberta_backbone_finetuning."""
from _hf import sentences
from _hf2 import fit_scored
from _hf3 import choice_accuracy
from healthy_hf_xlm_roberta_backbone_finetuning import FinetuneModule, pretrained_xlm_roberta

EXPECT = {"optimizer-coverage"}
SPLIT = "third-party"


class HandUnfreezing(FinetuneModule):
    def setup(self, stage: str) -> None:
        self.model.roberta.requires_grad_(False)

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == 1:
            self.model.roberta.requires_grad_(True)  # BUG: the optimizer was built without these parameters


if __name__ == "__main__":
    fit_scored(pretrained_xlm_roberta(), sentences, lr=2e-3, epochs=6, module=HandUnfreezing,
               metric=choice_accuracy, metric_name="acc")
