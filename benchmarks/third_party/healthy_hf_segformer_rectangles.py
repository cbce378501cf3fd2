"""Healthy: HuggingFace SegFormer (2-stage Mix Transformer encoder with reduced-resolution attention, all-MLP
decoder, random init) segmenting a coloured rectangle per image into 4 classes; per-pixel labels with 255 on the
rectangle's border ring, ignored by the model's loss (`semantic_loss_ignore_index=255`, the shipped default)."""
import transformers
from _hf2 import fit_scored, pixel_accuracy, rectangles

EXPECT = None
SPLIT = "third-party"


def segformer_config() -> transformers.SegformerConfig:
    return transformers.SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
                                        hidden_sizes=[32, 64], patch_sizes=[7, 3], strides=[4, 2],
                                        num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=64,
                                        num_labels=4, semantic_loss_ignore_index=255)


if __name__ == "__main__":
    fit_scored(transformers.SegformerForSemanticSegmentation(segformer_config()), rectangles, lr=1e-3,
               epochs=4, metric=pixel_accuracy, metric_name="pixel_acc")
