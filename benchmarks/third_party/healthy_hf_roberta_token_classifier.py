"""Healthy: HuggingFace RoBERTa token classifier (2 layers, random init, position ids offset by the padding id)
tagging each token as larger than the one before it; padded dict batches, labels -100 on padding."""
import transformers
from _hf import fit, tags

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.RobertaConfig(vocab_size=40, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, max_position_embeddings=40, pad_token_id=0, num_labels=2)
    fit(transformers.RobertaForTokenClassification(cfg), tags, lr=1e-3, epochs=4)
