"""Bug: a learning rate copied from an SGD recipe (0.5) given to AdamW for BERT: the loss jumps and the model
ends at the label prior. Otherwise healthy_hf_bert_sequence_classifier."""
import transformers
from _hf import fit, sentences

EXPECT = {"loss-trend", "exploding-gradient", "update-ratio"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, num_labels=2, max_position_embeddings=32)
    fit(transformers.BertForSequenceClassification(cfg), sentences, lr=0.5, epochs=4)
