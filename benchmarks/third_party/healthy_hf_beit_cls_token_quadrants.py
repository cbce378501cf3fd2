"""Healthy: HuggingFace BEiT image classifier pooled on its [CLS] token (`use_mean_pooling=False`; 2 layers,
relative position bias whose table BEiT initialises to zeros, absolute position embeddings, layer scale 0.1, random
init) classifying which quadrant of a noisy image is bright."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.BeitConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=128, use_relative_position_bias=True,
                                  use_absolute_position_embeddings=True, use_mean_pooling=False,
                                  layer_scale_init_value=0.1, num_labels=4)
    fit(transformers.BeitForImageClassification(cfg), quadrants, lr=1e-3, epochs=5)
