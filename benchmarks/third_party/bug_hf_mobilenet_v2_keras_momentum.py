"""Bug in the library code itself: HuggingFace's MobileNetV2 builds every BatchNorm with `momentum=0.997`, the
TensorFlow value (weight of the old estimate); in PyTorch momentum is the weight of the new batch, so the running
statistics follow single batches (the same bug torchvision fixed in MaxViT, pytorch/vision#8250)."""
import transformers
from _hf import fit, quadrants

EXPECT = {"batchnorm-variance"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.MobileNetV2Config(num_channels=3, image_size=32, depth_multiplier=0.35, num_labels=4)
    fit(transformers.MobileNetV2ForImageClassification(cfg), quadrants, lr=1e-3, epochs=3)
