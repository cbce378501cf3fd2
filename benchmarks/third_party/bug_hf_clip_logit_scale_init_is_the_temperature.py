"""Bug: CLIP built with `logit_scale_init_value=1 / 0.07`, the paper's inverse temperature, where the config wants
its log (the shipped default is ln(1 / 0.07) = 2.6592: the model multiplies the cosine similarities by
`logit_scale.exp()`). The in-batch logits are scaled by e^14.3 = 1.6e6 instead of 14.3: the softmax over pairs is
hard from the first step, the loss and its gradients start about 1e5 times too large. Same model and data as
healthy_hf_clip_contrastive. Measured: val retrieval accuracy 0.09 against 0.54 for the healthy twin."""
import transformers
from _hf2 import captions, fit_scored, retrieval_accuracy
from healthy_hf_clip_contrastive import clip_config

EXPECT = {"initial-loss", "exploding-gradient", "loss-trend"}
SPLIT = "third-party"

if __name__ == "__main__":
    fit_scored(transformers.CLIPModel(clip_config(logit_scale_init_value=1 / 0.07)), captions, lr=3e-4, epochs=10,
               metric=retrieval_accuracy, metric_name="retrieval_acc", forward_kwargs={"return_loss": True})
