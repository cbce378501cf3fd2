"""Healthy: HuggingFace ConvNeXt V2 image classifier (two stages, depthwise 7x7 convolutions, LayerNorm, Global
Response Normalization whose gamma and beta start at zero, random init) on noisy bright-quadrant images."""
import transformers
from _hf2 import fit_scored
from _hf import quadrants
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ConvNextV2Config(num_channels=3, patch_size=2, num_stages=2, hidden_sizes=[16, 32],
                                        depths=[1, 1], image_size=32, num_labels=4)
    fit_scored(transformers.ConvNextV2ForImageClassification(cfg), quadrants, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
