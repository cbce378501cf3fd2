"""Bug: `self.model.eval()` in training_step (left from a debugging session): BatchNorm normalises with its
running statistics, which never update. Otherwise healthy_hf_resnet_quadrants."""
import transformers
from _hf import fit, quadrants

EXPECT = {"train-mode"}
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                    layer_type="basic", num_labels=4)
    fit(transformers.ResNetForImageClassification(cfg), quadrants, lr=1e-3, epochs=3, eval_in_step=True)
