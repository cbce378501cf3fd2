"""Bug: `configure_optimizers` returns the scheduler of `get_linear_schedule_with_warmup(opt, total // 10, total)`,
counted in optimizer steps, as a bare `[sched]`; Lightning then steps it once per epoch (its default interval), so
the warm-up that should last 9 of the 96 steps lasts 9 epochs: the run ends after 3 epochs with the learning rate
still at 2/9 of its peak, having trained at 0 for the whole first epoch. Otherwise healthy_hf_gemma2_softcap."""
import torch
import transformers
from _hf import tokens
from _hf2 import ScoredModule, fit_scored, token_accuracy

EXPECT = {"lr-schedule"}
SPLIT = "third-party"


class EpochStepped(ScoredModule):
    def configure_optimizers(self):
        trainable = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW([{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": 0.01},
                                 {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}], lr=self.lr)
        total = self.trainer.estimated_stepping_batches
        sched = transformers.get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
        return [opt], [sched]  # BUG: {"scheduler": sched, "interval": "step"}


if __name__ == "__main__":
    cfg = transformers.Gemma2Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                    max_position_embeddings=64, sliding_window=8, query_pre_attn_scalar=16,
                                    attn_logit_softcapping=50.0, final_logit_softcapping=30.0, pad_token_id=0,
                                    bos_token_id=1, eos_token_id=2)
    fit_scored(transformers.Gemma2ForCausalLM(cfg), tokens, lr=1e-3, epochs=3, module=EpochStepped,
               metric=token_accuracy(shift=True), metric_name="token_acc")
