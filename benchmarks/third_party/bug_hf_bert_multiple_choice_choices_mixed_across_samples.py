"""Bug: the dataset returns each sample's choices as a list of (seq,) tensors, so the default collate hands over
a list of `choices` tensors of shape (batch, seq); the training step stacks them, which gives (choices, batch, seq),
and reshapes that with `.view(batch, choices, seq)` where `torch.stack(..., dim=1)` was meant: each sample's four
candidates are now endings of other samples, and its label no longer points at its own. Otherwise
healthy_hf_bert_multiple_choice."""
import torch
import transformers
from _hf2 import ScoredModule, fit_scored
from _hf3 import choice_accuracy, choices
from healthy_hf_bert_multiple_choice import bert_config

EXPECT = {"batch-mixing"}
SPLIT = "third-party"


def listed_choices(n: int, seed: int) -> list[dict]:
    return [{k: list(v) if v.dim() == 2 else v for k, v in item.items()} for item in choices(n, seed)]


class ChoicesModule(ScoredModule):
    def forward(self, **batch):
        for k, v in batch.items():
            if isinstance(v, list):
                batch[k] = torch.stack(v).view(v[0].shape[0], len(v), -1)  # BUG: stack(v, dim=1)
        return self.model(**batch)


if __name__ == "__main__":
    fit_scored(transformers.BertForMultipleChoice(bert_config()), listed_choices, lr=2e-3, epochs=6,
               module=ChoicesModule, metric=choice_accuracy, metric_name="acc")
