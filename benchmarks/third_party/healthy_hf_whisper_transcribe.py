"""Healthy: HuggingFace Whisper (2+2 layers, conv front end, sinusoidal encoder positions, random init)
transcribes a synthetic log-mel-like input (one bright band per token) into its tokens and end-of-sequence; the
decoder input is made inside the model from the labels (shifted right after the start token)."""
import transformers
from _hf2 import fit_scored, mel_notes, token_accuracy

EXPECT = None
SPLIT = "third-party"


def whisper_config() -> transformers.WhisperConfig:
    return transformers.WhisperConfig(vocab_size=40, num_mel_bins=16, d_model=64, encoder_layers=2, decoder_layers=2,
                                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                      decoder_ffn_dim=128, max_source_positions=32, max_target_positions=16,
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                                      suppress_tokens=None, begin_suppress_tokens=None)


if __name__ == "__main__":
    fit_scored(transformers.WhisperForConditionalGeneration(whisper_config()), mel_notes, lr=3e-3, epochs=12,
               metric=token_accuracy(shift=False), metric_name="token_acc")
