"""Healthy: HuggingFace Swin Transformer V2 image classifier (two stages, shifted windows, scaled cosine attention
with a learned logit scale, a continuous relative-position bias from a small MLP, residual post-norm, random init)
on noisy bright-quadrant images."""
import transformers
from _hf import quadrants
from _hf2 import fit_scored
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.Swinv2Config(image_size=32, patch_size=2, num_channels=3, embed_dim=32, depths=[2, 2],
                                    num_heads=[2, 4], window_size=4, num_labels=4)
    fit_scored(transformers.Swinv2ForImageClassification(cfg), quadrants, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
