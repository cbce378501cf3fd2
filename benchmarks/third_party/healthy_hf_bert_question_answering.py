"""Healthy: HuggingFace BERT for extractive question answering (2 layers, random init): start and end logits over
the positions of `[CLS] question [SEP] context [SEP] pad`, the loss the mean of the start and end cross-entropies
on `start_positions` / `end_positions`; the answer is the span after the question's key token in the context."""
import transformers
from _hf2 import fit_scored
from _hf3 import span_exact_match, spans

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, max_position_embeddings=32, type_vocab_size=2)
    fit_scored(transformers.BertForQuestionAnswering(cfg), spans, lr=2e-3, epochs=12, metric=span_exact_match,
               metric_name="exact")
