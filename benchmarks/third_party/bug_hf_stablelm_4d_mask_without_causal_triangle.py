"""Bug: the collate (written for packed sequences) hands the model a 4-D attention mask, `(batch, 1, query, key)`,
built by expanding the padding mask over the query axis, without the causal triangle: HuggingFace uses a 4-D mask
as given, so every position attends to the tokens after it and the causal LM learns to copy the next token. The
validation here uses the plain 2-D mask, as generation would, and shows what the model really learned. Otherwise
healthy_hf_stablelm_causal_lm."""
import torch
import transformers
from _hf import tokens
from _hf2 import ScoredModule, fit_scored, token_accuracy

EXPECT = {"causal-leakage"}
SPLIT = "third-party"


def packed_mask_tokens(n: int, seed: int) -> list[dict]:
    items = tokens(n, seed)
    for item in items:
        keep = item["attention_mask"].bool()
        item["attention_mask"] = keep[None, None, :].expand(1, len(keep), len(keep)).clone()  # BUG: & tril
    return items


class GenerationValidated(ScoredModule):
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        super().validation_step({**batch, "attention_mask": batch["attention_mask"][:, 0, 0].long()}, batch_idx)


if __name__ == "__main__":
    cfg = transformers.StableLmConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                                      partial_rotary_factor=0.25, use_qkv_bias=True, qk_layernorm=True,
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.StableLmForCausalLM(cfg), packed_mask_tokens, lr=1e-3, epochs=3, module=GenerationValidated,
               metric=token_accuracy(shift=True), metric_name="token_acc")
