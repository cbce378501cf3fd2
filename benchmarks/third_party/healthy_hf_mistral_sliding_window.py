"""Healthy: HuggingFace Mistral (2 layers, grouped-query attention, rotary positions, a sliding attention window of
8 tokens, shorter than the 32-token sequences, random init) as a causal LM on padded token sequences."""
import transformers
from _hf2 import fit_scored, token_accuracy
from _hf import tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MistralConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                     sliding_window=8, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.MistralForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
