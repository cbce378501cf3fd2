"""Healthy: HuggingFace StableLM (2 layers, LayerNorm, rotary positions on a quarter of each head's dimensions,
q/k/v biases, per-head q/k LayerNorm, random init) as a causal LM on padded token sequences."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.StableLmConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                      partial_rotary_factor=0.25, use_qkv_bias=True, qk_layernorm=True,
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.StableLmForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
