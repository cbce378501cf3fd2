"""Healthy: HuggingFace MobileViT image classifier (MobileNetV2-style inverted residuals with BatchNorm at PyTorch's
momentum 0.1, then MobileViT blocks that unfold the feature map into patches for a small Transformer and fold it
back, random init) on noisy bright-quadrant images of 128 px, so that the last stage's 4x4 map still holds 2x2
patches for its attention (at 32 px the deepest stages hold one patch, a softmax over one key)."""
import functools

import transformers
from _hf import quadrants
from _hf2 import fit_scored
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MobileViTConfig(num_channels=3, image_size=128, patch_size=2, hidden_sizes=[32, 40, 48],
                                       neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
                                       mlp_ratio=2.0, num_labels=4)
    fit_scored(transformers.MobileViTForImageClassification(cfg), functools.partial(quadrants, size=128), lr=2e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
