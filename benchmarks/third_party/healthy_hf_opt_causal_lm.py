"""Healthy: HuggingFace OPT (2 layers, learned positions offset by 2, ReLU feed-forward, pre-LayerNorm, tied
input/output embeddings, random init) as a causal LM on padded token sequences, labels -100 on padding."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.OPTConfig(vocab_size=64, hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                                 num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=64,
                                 pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.OPTForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
