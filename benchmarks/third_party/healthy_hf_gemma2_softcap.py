"""Healthy: HuggingFace Gemma 2 (2 layers, embeddings scaled by sqrt(hidden), tied output, attention-logit and
final-logit soft-capping with tanh, alternating sliding-window and global layers, pre- and post-norms, random init)
as a causal LM on padded token sequences."""
import transformers
from _hf2 import fit_scored, token_accuracy
from _hf import tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.Gemma2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    max_position_embeddings=64, sliding_window=8, query_pre_attn_scalar=16,
                                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0, pad_token_id=0,
                                    bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.Gemma2ForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
