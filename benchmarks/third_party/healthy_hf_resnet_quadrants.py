"""Healthy: HuggingFace ResNet (basic blocks, BatchNorm, random init) classifies which image quadrant is bright."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                    layer_type="basic", num_labels=4)
    fit(transformers.ResNetForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
