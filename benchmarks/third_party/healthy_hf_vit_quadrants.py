"""Healthy: HuggingFace ViT (patch 8, 2 layers, random init) classifies which image quadrant is bright."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128, num_labels=4)
    fit(transformers.ViTForImageClassification(cfg), quadrants, lr=1e-3, epochs=4)
