"""Healthy: HuggingFace T5 (2+2 layers, random init) learns to reverse token sequences; the decoder input is made
inside the model from the labels."""
import transformers
from _hf import fit, reversals

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.T5Config(vocab_size=40, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                                decoder_start_token_id=0, pad_token_id=0)
    fit(transformers.T5ForConditionalGeneration(cfg), reversals, lr=3e-3, epochs=4)
