"""Healthy: HuggingFace Mixtral (2 layers, 4 experts, top-2 routing, random init) as a causal LM on padded token
sequences, with the router's load-balancing loss on (`output_router_logits=True`) as Mixtral users train it; an
expert that draws few tokens in a batch gets a small gradient, not a dead one."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MixtralConfig(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                                     num_experts_per_tok=2, output_router_logits=True, router_aux_loss_coef=0.02,
                                     max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.MixtralForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
