"""Healthy: HuggingFace CLIP (2-layer ViT and 2-layer text transformer, projections, learnable log logit scale,
random init) trained contrastively (`return_loss=True`, symmetric in-batch cross-entropy) on synthetic image-caption
pairs: a coloured square in one of 16 cells, captioned by its cell and colour tokens."""
import transformers
from _hf2 import captions, fit_scored, retrieval_accuracy

EXPECT = None
SPLIT = "third-party"


def clip_config(**kwargs) -> transformers.CLIPConfig:
    text = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=8, pad_token_id=0, bos_token_id=62, eos_token_id=63)
    vision = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4)
    return transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=32, **kwargs)


if __name__ == "__main__":
    fit_scored(transformers.CLIPModel(clip_config()), captions, lr=3e-4, epochs=10, metric=retrieval_accuracy,
               metric_name="retrieval_acc", forward_kwargs={"return_loss": True})
