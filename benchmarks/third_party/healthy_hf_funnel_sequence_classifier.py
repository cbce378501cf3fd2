"""Healthy: HuggingFace Funnel Transformer (two blocks, the sequence pooled to half its length between them,
a decoder that upsamples back, relative attention, random init) classifies padded token sequences."""
import transformers
from _hf2 import fit_scored
from _hf import sentences
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.FunnelConfig(vocab_size=64, block_sizes=[1, 1], block_repeats=None, num_decoder_layers=1,
                                    d_model=64, n_head=4, d_head=16, d_inner=128, num_labels=2)
    fit_scored(transformers.FunnelForSequenceClassification(cfg), sentences, lr=1e-3, epochs=4,
               metric=choice_accuracy, metric_name="acc")
