"""Healthy: HuggingFace BART (1+1 layers, random init) learns to reverse token sequences; the decoder input is the
labels shifted right inside the model."""
import transformers
from _hf import fit, reversals

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BartConfig(vocab_size=40, d_model=64, encoder_layers=1, decoder_layers=1,
                                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                  decoder_ffn_dim=128, max_position_embeddings=32, pad_token_id=0, bos_token_id=1,
                                  eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    fit(transformers.BartForConditionalGeneration(cfg), reversals, lr=3e-3, epochs=4)
