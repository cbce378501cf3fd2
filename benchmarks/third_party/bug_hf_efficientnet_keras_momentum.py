"""Bug in the library code itself: HuggingFace's EfficientNet builds its BatchNorm layers with
`momentum=config.batch_norm_momentum`, default 0.99, the Keras value (weight of the old estimate); in PyTorch the
momentum is the weight of the new batch, so the running statistics are those of the last batch alone (the same bug
as HuggingFace's MobileNetV2 and torchvision's old MaxViT). Trained from random init as shipped, which also brings
a second library bug found while writing this scenario: `_init_weights` draws every BatchNorm weight (gamma) from
N(0, 0.02) like a Linear weight instead of setting it to 1, so each BN scales the signal by ~0.02 and the logits are
identical for every input at init (their spread over a batch ~1e-35): the model cannot learn at all."""
import transformers
from _hf import quadrants
from _hf2 import fit_scored
from _hf3 import choice_accuracy

EXPECT = {"batchnorm-variance"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.EfficientNetConfig(num_channels=3, image_size=32, width_coefficient=0.25, depth_coefficient=0.25,
                                          hidden_dim=320, num_labels=4)
    fit_scored(transformers.EfficientNetForImageClassification(cfg), quadrants, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
