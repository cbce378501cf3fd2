"""Healthy: HuggingFace DeBERTa-v2 sequence classifier (2 layers, disentangled content/position attention with
log-bucketed relative positions and no absolute position input, random init) on padded token sequences."""
import transformers
from _hf import fit, sentences

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.DebertaV2Config(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=128, max_position_embeddings=32, relative_attention=True,
                                       pos_att_type=["p2c", "c2p"], position_biased_input=False, position_buckets=16,
                                       norm_rel_ebd="layer_norm", share_att_key=True, pad_token_id=0, num_labels=2)
    fit(transformers.DebertaV2ForSequenceClassification(cfg), sentences, lr=1e-3, epochs=4)
