"""Healthy: HuggingFace Swin Transformer V2 image classifier (two stages, shifted windows, scaled cosine attention
with a learned logit scale, a continuous relative-position bias from a small MLP, residual post-norm, random init)
on noisy images of a coloured square anywhere (`_hf3.colours`). On the bright-quadrant
images it stayed at chance: with relative positions only and a global average pool it has no absolute position,
and `use_absolute_embeddings=True` crashes in this version (65 position embeddings for 64 patches)."""
import transformers
from _hf2 import fit_scored
from _hf3 import choice_accuracy, colours

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    cfg = transformers.Swinv2Config(image_size=32, patch_size=4, num_channels=3, embed_dim=32, depths=[2, 2],
                                    num_heads=[2, 4], window_size=4, num_labels=4)
    fit_scored(transformers.Swinv2ForImageClassification(cfg), colours, lr=1e-3, epochs=3,
               metric=choice_accuracy, metric_name="acc")
