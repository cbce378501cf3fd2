"""Healthy: HuggingFace Mamba (2 selective state-space layers, no attention at all, causal depthwise convolution,
the sequential CPU scan, random init) as a causal LM on padded token sequences."""
import transformers
from _hf2 import fit_scored, token_accuracy
from _hf import tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MambaConfig(vocab_size=64, hidden_size=64, state_size=8, num_hidden_layers=2, expand=2,
                                   conv_kernel=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.MambaForCausalLM(cfg), tokens, lr=3e-3, epochs=2, metric=token_accuracy(shift=True),
               metric_name="token_acc")
