"""Healthy: HuggingFace Pegasus (2+2 pre-norm layers with a final LayerNorm on each stack, sinusoidal positions,
scaled embeddings, decoder start = pad id, random init) learns to reverse its source."""
import transformers
from _hf import reversals
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.PegasusConfig(vocab_size=40, d_model=64, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                     decoder_ffn_dim=128, max_position_embeddings=32, scale_embedding=True,
                                     pad_token_id=0, eos_token_id=2, decoder_start_token_id=0,
                                     forced_eos_token_id=2)
    fit_scored(transformers.PegasusForConditionalGeneration(cfg), reversals, lr=3e-3, epochs=8,
               metric=token_accuracy(shift=False), metric_name="token_acc")
