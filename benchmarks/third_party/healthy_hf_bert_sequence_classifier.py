"""Healthy: HuggingFace BERT (2 layers, random init) for sequence classification on padded sentences with an
attention mask; the loss inside the model."""
import transformers
from _hf import fit, sentences

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, num_labels=2, max_position_embeddings=32)
    fit(transformers.BertForSequenceClassification(cfg), sentences, lr=5e-4, epochs=4)
