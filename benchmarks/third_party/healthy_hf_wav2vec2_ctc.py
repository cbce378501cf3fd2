"""Healthy: HuggingFace Wav2Vec2 for CTC (3-layer conv feature extractor with group norm, convolutional position
embedding, 2 transformer layers, SpecAugment time masking, random init) transcribing a synthetic 1-D signal of
3-6 tones into their ids; blank = pad id 0, labels padded with -100 as `DataCollatorCTCWithPadding` does,
`ctc_loss_reduction="mean"`."""
import transformers
from _hf2 import audio_notes, ctc_exact_match, fit_scored

EXPECT = None
SPLIT = "third-party"


def wav2vec2_config() -> transformers.Wav2Vec2Config:
    return transformers.Wav2Vec2Config(vocab_size=10, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=128, conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3),
                                       conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
                                       num_conv_pos_embedding_groups=4, feat_extract_norm="group",
                                       ctc_loss_reduction="mean", pad_token_id=0, mask_time_prob=0.05,
                                       mask_time_length=5)


if __name__ == "__main__":
    fit_scored(transformers.Wav2Vec2ForCTC(wav2vec2_config()), audio_notes, lr=1e-3, epochs=6,
               metric=ctc_exact_match, metric_name="exact_match")
