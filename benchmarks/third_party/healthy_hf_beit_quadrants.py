"""Healthy: HuggingFace BEiT image classifier (2 layers, relative position bias, absolute position embeddings,
layer scale 0.1, mean pooling of the patch tokens, random init) classifying which quadrant of a noisy image is
bright. Without absolute position embeddings (BEiT's default) the mean-pooled model learns nothing in 3 epochs
(quadrants are absolute positions); with them, 10 epochs at lr 1e-3 reach val acc 1.0."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"


def beit_config() -> transformers.BeitConfig:
    return transformers.BeitConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=128, use_relative_position_bias=True,
                                   use_absolute_position_embeddings=True, use_mean_pooling=True,
                                   layer_scale_init_value=0.1, num_labels=4)


if __name__ == "__main__":
    fit(transformers.BeitForImageClassification(beit_config()), quadrants, lr=1e-3, epochs=10)
