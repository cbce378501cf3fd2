"""Healthy: HuggingFace GPT-J (2 layers, attention and MLP in parallel off one LayerNorm, rotary positions on the
first 8 of each head's 16 dimensions, interleaved, an untied output head with a bias, random init) as a causal LM
on padded token sequences."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.GPTJConfig(vocab_size=64, n_positions=64, n_embd=64, n_layer=2, n_head=4, rotary_dim=8,
                                  n_inner=128, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                  tie_word_embeddings=False)
    fit_scored(transformers.GPTJForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
