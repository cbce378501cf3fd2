"""Healthy: HuggingFace ALBERT sequence classifier (one transformer layer applied twice with shared weights,
factorised 16-wide embeddings, random init) on padded token sequences: does a sentence start with mostly small ids."""
import transformers
from _hf import fit, sentences

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=128, max_position_embeddings=32,
                                    pad_token_id=0, num_labels=2)
    fit(transformers.AlbertForSequenceClassification(cfg), sentences, lr=1e-3, epochs=4)
