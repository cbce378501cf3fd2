"""Bug: discriminative learning rates written as two groups, the embeddings and the encoder, and the classifier head
forgotten: it stays at its random init while the encoder adapts to it. Otherwise
healthy_hf_bert_sequence_classifier."""
import torch
import transformers
from _hf import HFModule, fit, sentences

EXPECT = {"optimizer-coverage"}
SPLIT = "third-party"


class TwoGroups(HFModule):
    def configure_optimizers(self):
        bert = self.model.bert
        return torch.optim.AdamW([{"params": bert.embeddings.parameters(), "lr": self.lr / 4},
                                  {"params": bert.encoder.parameters(), "lr": self.lr}], weight_decay=0.01)


if __name__ == "__main__":
    import _hf

    _hf.HFModule = TwoGroups  # fit() builds the module from this name
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, num_labels=2, max_position_embeddings=32)
    fit(transformers.BertForSequenceClassification(cfg), sentences, lr=5e-4, epochs=4)
