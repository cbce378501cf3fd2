"""Bug: the collate copies `input_ids` to `labels` without setting padding to -100: the model is trained to
predict the pad token after the end of every sequence. Otherwise healthy_hf_gpt2_padded_lm."""
import functools

import transformers
from _hf import fit, tokens

EXPECT = {"label-distribution"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=2, n_head=4, bos_token_id=1,
                                  eos_token_id=1)
    fit(transformers.GPT2LMHeadModel(cfg), functools.partial(tokens, pad_labels=True), lr=1e-3, epochs=3)
