"""Healthy: HuggingFace Falcon (2 layers, parallel attention and MLP off one LayerNorm, multi-query attention with
a single shared key/value head, rotary positions, no biases, random init) as a causal LM on padded token
sequences."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.FalconConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    multi_query=True, parallel_attn=True, new_decoder_architecture=False,
                                    alibi=False, bias=False, max_position_embeddings=64, pad_token_id=0,
                                    bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.FalconForCausalLM(cfg), tokens, lr=3e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
