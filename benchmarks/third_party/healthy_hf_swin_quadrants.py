"""Healthy: HuggingFace Swin Transformer (shifted windows, patch merging, random init) classifying which quadrant
of a noisy 32x32 image is bright; dict batches with `pixel_values` and `labels`."""
import transformers
from _hf import fit, quadrants

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.SwinConfig(image_size=32, patch_size=4, num_channels=3, embed_dim=32, depths=[2, 2],
                                  num_heads=[2, 4], window_size=4, num_labels=4)
    fit(transformers.SwinForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
