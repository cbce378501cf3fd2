"""Bug: the images reach HuggingFace BEiT as raw 0..255 pixel values: the collate stacks the decoded images and
skips the image processor's rescale (1/255) and normalisation (mean 0.5, std 0.5). BEiT has no input BatchNorm:
the patch embeddings come out about 100 times too large and swamp the position embeddings, which this task (which
quadrant is bright) needs. Same model and images as healthy_hf_beit_quadrants, whose inputs are on the
processor's scale (about unit RMS)."""
import transformers
from _hf import fit, quadrants
from healthy_hf_beit_quadrants import beit_config

EXPECT = {"input-scale"}
SPLIT = "third-party"


def raw_pixels(n: int, seed: int) -> list[dict]:
    items = quadrants(n, seed)
    for item in items:
        item["pixel_values"] = (item["pixel_values"] * 64 + 128).clamp(0, 255).round()  # what the processor rescales
    return items


if __name__ == "__main__":
    fit(transformers.BeitForImageClassification(beit_config()), raw_pixels, lr=1e-3, epochs=10)
