"""Healthy: HuggingFace Switch Transformers (2+2 layers, the second feed-forward of the encoder and of the decoder a
4-expert top-1 router with expert capacity, as in switch-base's every-other-layer pattern; random init) learns to
reverse token sequences, trained with `output_router_logits=True` so that the router z-loss and load-balancing
loss are in the returned loss (the model computes them only when the sparse step is above 1); tokens over an
expert's capacity skip it, so an expert's share of gradient varies per batch."""
import transformers
from _hf import reversals
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.SwitchTransformersConfig(vocab_size=40, d_model=64, d_kv=16, d_ff=128, expert_capacity=32,
                                                num_layers=2, num_sparse_encoder_layers=1, num_decoder_layers=2,
                                                num_sparse_decoder_layers=1, num_heads=4, num_experts=4,
                                                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    fit_scored(transformers.SwitchTransformersForConditionalGeneration(cfg), reversals, lr=3e-3, epochs=8,
               metric=token_accuracy(shift=False), metric_name="token_acc",
               forward_kwargs={"output_router_logits": True})
