"""Bug: the collate shifts the labels left by one (`labels = input_ids[1:]`), and GPT-2 shifts them again inside
the model: position t is trained on token t + 2. Otherwise healthy_hf_gpt2_padded_lm."""
import functools

import transformers
from _hf import fit, tokens

EXPECT = {"loss-input"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=2, n_head=4, bos_token_id=1,
                                  eos_token_id=1)
    fit(transformers.GPT2LMHeadModel(cfg), functools.partial(tokens, preshift=True), lr=1e-3, epochs=3)
