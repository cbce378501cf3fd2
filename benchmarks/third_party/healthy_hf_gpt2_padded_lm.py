"""Healthy: HuggingFace GPT-2 (2 layers, random init) as a causal LM on padded token sequences; labels are the
input ids with padding set to -100, shifted inside the model. AdamW with no decay on biases/LayerNorms, linear
warm-up and decay per step."""
import transformers
from _hf import fit, tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=2, n_head=4, bos_token_id=1,
                                  eos_token_id=1)
    fit(transformers.GPT2LMHeadModel(cfg), tokens, lr=1e-3, epochs=3)
