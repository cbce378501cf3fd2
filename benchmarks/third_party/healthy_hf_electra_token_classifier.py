"""Healthy: HuggingFace ELECTRA token classifier (32-wide embeddings projected to a 64-wide 2-layer encoder,
random init) tagging each token as larger than the one before it; padded dict batches, labels -100 on padding."""
import transformers
from _hf import tags
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ElectraConfig(vocab_size=40, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=128, max_position_embeddings=40,
                                     pad_token_id=0, num_labels=2)
    fit_scored(transformers.ElectraForTokenClassification(cfg), tags, lr=1e-3, epochs=4,
               metric=token_accuracy(shift=False), metric_name="token_acc")
