"""Healthy: HuggingFace RegNet-Y (4 stages of grouped-conv bottlenecks with squeeze-and-excitation, PyTorch
BatchNorm defaults, random init) classifying which quadrant of a noisy image is bright."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.RegNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64, 64],
                                    depths=[1, 1, 1, 1], groups_width=8, layer_type="y", num_labels=4)
    fit(transformers.RegNetForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
