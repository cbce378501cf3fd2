"""Bug: the collate builds the attention mask as `input_ids == pad_id` (1 on padding) where `!=` was meant. With
right padding and the causal mask, every real token may attend only to padding that comes after it: its attention
row is fully masked and SDPA returns zeros there (checked: no future token reaches it). Attention contributes
nothing to the real positions, so q/k/v/o projections get exactly zero gradient and the model is left guessing the
next token from the current one. Otherwise healthy_hf_mistral_sliding_window."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = {"dead-gradient"}
SPLIT = "third-party"


def inverted_mask_tokens(n: int, seed: int) -> list[dict]:
    items = tokens(n, seed)
    for item in items:
        item["attention_mask"] = (item["input_ids"] == 0).long()  # BUG: != 0
    return items


if __name__ == "__main__":
    cfg = transformers.MistralConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                     sliding_window=8, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.MistralForCausalLM(cfg), inverted_mask_tokens, lr=1e-3, epochs=3,
               metric=token_accuracy(shift=True), metric_name="token_acc")
