"""Bug: CLIP trained with per-tower parameter groups (vision tower, text tower, the two projections) built by hand;
the learnable temperature `logit_scale`, a bare parameter of `CLIPModel` itself, is in none of them, so it stays
at its initial 1/0.07 while it would grow (the softmax over in-batch pairs stays soft). Same model and data as
healthy_hf_clip_contrastive. Measured: no effect within this short run (val retrieval accuracy 0.54 in both: the
healthy twin's scale itself only moves from 14.3 to about 16 in 320 steps); the harm is in long runs, where CLIP's
learned scale climbs to 100."""
import torch
import transformers
from _hf2 import ScoredModule, captions, fit_scored, retrieval_accuracy
from healthy_hf_clip_contrastive import clip_config

EXPECT = {"optimizer-coverage"}
SPLIT = "third-party"


class PerTowerCLIP(ScoredModule):
    def configure_optimizers(self):
        m = self.model
        groups = [{"params": list(m.vision_model.parameters()), "lr": self.lr},
                  {"params": list(m.text_model.parameters()), "lr": self.lr},
                  {"params": list(m.visual_projection.parameters()) + list(m.text_projection.parameters()),
                   "lr": self.lr}]
        opt = torch.optim.AdamW(groups, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        sched = transformers.get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
        return [opt], [{"scheduler": sched, "interval": "step"}]


if __name__ == "__main__":
    fit_scored(transformers.CLIPModel(clip_config()), captions, lr=3e-4, epochs=10, module=PerTowerCLIP,
               metric=retrieval_accuracy, metric_name="retrieval_acc", forward_kwargs={"return_loss": True})
