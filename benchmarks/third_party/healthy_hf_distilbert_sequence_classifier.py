"""Healthy: HuggingFace DistilBERT sequence classifier (2 layers, sinusoidal positions off, random init) on padded
dict batches; the label depends on the first 8 tokens."""
import transformers
from _hf import fit, sentences

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.DistilBertConfig(vocab_size=50, dim=64, hidden_dim=128, n_layers=2, n_heads=4,
                                        max_position_embeddings=32, pad_token_id=0, num_labels=2)
    fit(transformers.DistilBertForSequenceClassification(cfg), sentences, lr=1e-3, epochs=4)
