"""Healthy: HuggingFace BERT for multiple choice (2 layers, random init): a batch of shape (batch, choices, seq) with
token types, flattened to (batch * choices, seq) inside the model, one score per choice, cross-entropy over the
4 choices of each sample; the right ending is the one copied from the context."""
import transformers
from _hf2 import fit_scored
from _hf3 import choice_accuracy, choices

EXPECT = None
SPLIT = "third-party"


def bert_config() -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=128, max_position_embeddings=32, type_vocab_size=2)


if __name__ == "__main__":
    fit_scored(transformers.BertForMultipleChoice(bert_config()), choices, lr=2e-3, epochs=6, metric=choice_accuracy,
               metric_name="acc")
