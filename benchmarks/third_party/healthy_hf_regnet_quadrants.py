"""Healthy: HuggingFace RegNet-Y (4 stages of grouped-conv bottlenecks with squeeze-and-excitation, PyTorch
BatchNorm defaults, random init) classifying which quadrant of a noisy image is bright. Stage widths 32-128 give
squeeze-and-excitation bottlenecks of 8-32 units, as in the smallest real RegNet-Y; at widths 16-64 the 4-unit
squeeze ReLU of stage 2 died during training (dead-activations, true but harmless: val acc 0.91)."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.RegNetConfig(num_channels=3, embedding_size=32, hidden_sizes=[32, 64, 128, 128],
                                    depths=[1, 1, 1, 1], groups_width=8, layer_type="y", num_labels=4)
    fit(transformers.RegNetForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
