"""Healthy: HuggingFace DINOv2 image classifier (2 layers, LayerScale on both residual branches, CLS token and
mean patch token concatenated for the head, interpolated position embeddings, random init) on noisy bright-quadrant
images."""
import transformers
from _hf2 import fit_scored
from _hf import quadrants
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                                    image_size=32, patch_size=8, num_labels=4, layerscale_value=1.0)
    fit_scored(transformers.Dinov2ForImageClassification(cfg), quadrants, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
