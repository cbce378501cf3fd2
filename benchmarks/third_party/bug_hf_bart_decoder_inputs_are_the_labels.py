"""Bug: the collate hands HuggingFace BART `decoder_input_ids` itself, and hands it the labels unshifted (a
hand-written seq2seq collate that forgot `shift_tokens_right`): decoder position t reads target token t, the
one it must predict, so teacher forcing turns into copying: validation loss 0.02 against 1.36 for healthy_hf_bart_reversal (the same
model and data with the decoder inputs made inside the model), and generation, which has no target to read, fails."""
import functools

import transformers
from _hf import fit, reversals

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "third-party"


def with_decoder_inputs(n: int, seed: int) -> list[dict]:
    items = reversals(n, seed)
    for item in items:
        item["decoder_input_ids"] = item["labels"].clone()  # should be the labels shifted right
    return items


if __name__ == "__main__":
    cfg = transformers.BartConfig(vocab_size=40, d_model=64, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                  decoder_ffn_dim=128, max_position_embeddings=32, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    fit(transformers.BartForConditionalGeneration(cfg), with_decoder_inputs, lr=3e-3, epochs=4)
