"""Healthy: HuggingFace BLOOM (2 layers, ALiBi attention biases instead of position embeddings, embedding
LayerNorm, tied input/output embeddings, random init) as a causal LM on padded token sequences."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BloomConfig(vocab_size=64, hidden_size=64, n_layer=2, n_head=4, pad_token_id=0,
                                   bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.BloomForCausalLM(cfg), tokens, lr=3e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
