"""Healthy: HuggingFace Switch Transformers (2+2 layers, every feed-forward a 4-expert top-1 router with expert
capacity, random init) learns to reverse token sequences, with its router z-loss and load-balancing loss in the
returned loss; tokens over an expert's capacity skip it, so an expert's share of gradient varies per batch."""
import transformers
from _hf import reversals
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.SwitchTransformersConfig(vocab_size=40, d_model=64, d_kv=16, d_ff=128, expert_capacity=32,
                                                num_layers=2, num_sparse_encoder_layers=2, num_decoder_layers=2,
                                                num_sparse_decoder_layers=2, num_heads=4, num_experts=4,
                                                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    fit_scored(transformers.SwitchTransformersForConditionalGeneration(cfg), reversals, lr=3e-3, epochs=8,
               metric=token_accuracy(shift=False), metric_name="token_acc")
