"""Healthy: HuggingFace PoolFormer image classifier (two stages, average pooling minus identity as the token mixer,
GroupNorm with one group, LayerScale initialised at 1e-5 on both residual branches, random init) on noisy
bright-quadrant images."""
import transformers
from _hf import quadrants
from _hf2 import fit_scored
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.PoolFormerConfig(num_channels=3, num_encoder_blocks=2, depths=[2, 2], hidden_sizes=[32, 64],
                                        patch_sizes=[7, 3], strides=[4, 2], padding=[2, 1], num_labels=4)
    fit_scored(transformers.PoolFormerForImageClassification(cfg), quadrants, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
