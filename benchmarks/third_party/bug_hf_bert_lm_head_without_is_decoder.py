"""Bug: HuggingFace `BertLMHeadModel` trained as a causal LM (labels shifted inside the model) with the config's
`is_decoder` left at its default, False: attention stays bidirectional, so every position reads the token it must
predict. After 8 epochs its validation loss is 1.82 against 2.06 for healthy_hf_bert_lm_head_is_decoder (the
same model with `BertConfig(is_decoder=True)`), and it falls further the longer it trains; generating from it, where
no next token exists to read, gives garbage."""
import transformers
from _hf import fit, tokens

EXPECT = {"causal-leakage"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=64, pad_token_id=0)
    fit(transformers.BertLMHeadModel(cfg), tokens, lr=1e-3, epochs=8)
