"""Healthy: HuggingFace GPT-NeoX (2 layers, parallel attention and MLP residual, partial rotary positions, random
init) as a causal LM on padded token sequences, labels -100 on padding and shifted inside the model."""
import transformers
from _hf import fit, tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.GPTNeoXConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=64, rotary_pct=0.25,
                                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit(transformers.GPTNeoXForCausalLM(cfg), tokens, lr=1e-3, epochs=3)
