"""Bug: a timm ViT (``vit_small_patch16_224`` re-shaped: img_size=32, patch_size=8, depth 4, embed 128, 4 heads,
pretrained=False) trained with hand-written layer-wise lr decay (AdamW, lr 1e-3 at the top, x0.75 per block
downward). The param groups are built from the embedding (patch_embed, cls_token, pos_embed) and from
``model.blocks``, the way fine-tuning recipes list them, but the final ``norm`` and the classification ``head``
are never added to any group: they keep their random init for the whole run while the blocks learn to feed a
fixed random head. A user writes it by copying a layer-decay snippet that handled the head in a separate line
they did not copy. Measured (patch colour): the head's weights do not move (relative change 0.000 vs 1.01 with
the head and norm in a group at the base lr); accuracy does not show it on this easy task (val acc 1.00 with the
bug vs 0.93 with the fix): the blocks learn to feed the random head."""
import lightning as L
import timm
import torch

from _vision import Classifier, Normalized, colours, fit, hflip, loaders

EXPECT = {"optimizer-coverage"}
SPLIT = "third-party"

BASE_LR, DECAY = 1e-3, 0.75


def layer_decay_adamw(module):
    vit = module.model
    depth = len(vit.blocks)
    embed = [vit.cls_token, vit.pos_embed, *vit.patch_embed.parameters()]
    groups = [{"params": embed, "lr": BASE_LR * DECAY ** depth}]
    for i, block in enumerate(vit.blocks):
        groups.append({"params": list(block.parameters()), "lr": BASE_LR * DECAY ** (depth - 1 - i)})
    # BUG: vit.norm and vit.head are in no group
    return torch.optim.AdamW(groups, lr=BASE_LR, weight_decay=0.05)


if __name__ == "__main__":
    L.seed_everything(83)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=4,
                              embed_dim=128, num_heads=4, num_classes=4)
    train, val = loaders(Normalized(colours(1024, seed=42), augment=hflip), Normalized(colours(256, seed=43)),
                         batch_size=32)
    head_at_init = model.head.weight.detach().clone()
    fit(Classifier(model, layer_decay_adamw), train, val, epochs=5)
    change = (model.head.weight.detach() - head_at_init).norm() / head_at_init.norm()
    print(f"SYMPTOM head_weight_relative_change={change:.3f}")
