"""Healthy: HuggingFace ConvNeXt (2 stages, LayerNorm, layer scale, random init) classifies which image quadrant
is bright."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1],
                                      num_labels=4, image_size=32)
    fit(transformers.ConvNextForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
