"""Healthy: HuggingFace Qwen2-MoE (2 layers, 8 routed experts top-2 without renormalising the top-k weights, plus a
shared expert behind a sigmoid gate, router load-balancing loss on, random init) as a causal LM on padded token
sequences; with 8 experts and top-2 some experts draw few tokens in a batch."""
import transformers
from _hf import tokens
from _hf2 import fit_scored, token_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.Qwen2MoeConfig(vocab_size=64, hidden_size=64, intermediate_size=96, moe_intermediate_size=48,
                                      shared_expert_intermediate_size=96, num_experts=8, num_experts_per_tok=2,
                                      norm_topk_prob=False, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, decoder_sparse_step=1, output_router_logits=True,
                                      router_aux_loss_coef=0.01, max_position_embeddings=64, pad_token_id=0,
                                      bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.Qwen2MoeForCausalLM(cfg), tokens, lr=1e-3, epochs=3, metric=token_accuracy(shift=True),
               metric_name="token_acc")
