"""Healthy: HuggingFace `BertLMHeadModel` as a causal LM, set up as its docs say (`BertConfig(is_decoder=True)`:
causal self-attention), on padded token sequences with labels -100 on padding, shifted inside the model. 8 epochs:
validation loss 2.06 (the twin without `is_decoder` reads the next token and reaches 1.82)."""
import transformers
from _hf import fit, tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, is_decoder=True)
    fit(transformers.BertLMHeadModel(cfg), tokens, lr=1e-3, epochs=8)
