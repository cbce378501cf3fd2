"""Healthy: HuggingFace MobileViT image classifier (MobileNetV2-style inverted residuals with BatchNorm at PyTorch's
momentum 0.1, then MobileViT blocks that unfold the feature map into patches for a small Transformer and fold it
back, random init) on noisy bright-quadrant images of 64 px with 1-pixel patches, so that the last stage's 2x2 map
still gives its attention 4 patches (with 2x2 patches at 32 px the deepest stages hold one: a softmax over one
key). From scratch, the BatchNorm weights are set to 1 first: HF's `_init_weights` draws them from N(0, 0.02)
(fine when pretrained weights are loaded over it), which shrinks the signal ~50x at every BN and left the model at
chance after 3 epochs."""
import functools

import torch
import transformers
from _hf import quadrants
from _hf2 import fit_scored
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MobileViTConfig(num_channels=3, image_size=64, patch_size=1, hidden_sizes=[32, 40, 48],
                                       neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
                                       mlp_ratio=2.0, num_labels=4)
    model = transformers.MobileViTForImageClassification(cfg)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    fit_scored(model, functools.partial(quadrants, size=64), lr=2e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
