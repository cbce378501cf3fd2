"""Bug (labels): a multi-label image tagger whose annotations are ragged tag lists. The collate function pads the
lists with 0 to a rectangle and builds the multi-hot target with `scatter_(1, padded, 1.0)`, but tag id 0 is a real
tag ("cell"), so every image with fewer than the maximum number of tags is marked positive for tag 0 (about 2/3 of the
images). The model learns "fewer than 3 patterns -> tag 0"; validation goes through the same collate and looks fine
(macro F1 0.99). Symptom, scored against the annotations: tag-0 F1 0.61 and macro F1 0.91, vs 0.98 / 0.99 with a
padding id that is dropped (`scatter_` into K + 1 columns, then `[:, :K]`).

Model: a small Conv-BN-ReLU CNN (kaiming init) on synthetic 16x16 images where each of 5 tags is a fixed 4x4
pattern pasted at a random place (1 to 3 tags per image); BCEWithLogits, SGD momentum 0.9 + nesterov, MultiStepLR."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout5"
K = 5
PAD = 0


def make_tagged_images(n, gen, size=16):
    templates = torch.randn(K, 4, 4, generator=torch.Generator().manual_seed(1)).sign()
    images = 0.4 * torch.randn(n, size, size, generator=gen)
    tag_lists = []
    for i in range(n):
        k = int(torch.randint(1, 4, (1,), generator=gen))
        tags = torch.randperm(K, generator=gen)[:k]
        for t in tags.tolist():
            r, c = torch.randint(0, size - 4, (2,), generator=gen).tolist()
            images[i, r:r + 4, c:c + 4] += templates[t]
        tag_lists.append(sorted(tags.tolist()))
    return images.unsqueeze(1), tag_lists


class TaggedImages(Dataset):
    def __init__(self, images, tag_lists):
        self.images, self.tag_lists = images, tag_lists

    def __len__(self):
        return len(self.tag_lists)

    def __getitem__(self, i):
        return self.images[i], self.tag_lists[i]


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    width = max(len(b[1]) for b in batch)
    padded = torch.tensor([b[1] + [PAD] * (width - len(b[1])) for b in batch])
    targets = torch.zeros(len(batch), K).scatter_(1, padded, 1.0)
    return images, targets


class TagCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.head = nn.Linear(64, K)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(F.adaptive_max_pool2d(self.features(x), 1).flatten(1))


def f1_per_tag(logits, targets):
    pred = (logits > 0).float()
    tp = (pred * targets).sum(0)
    return 2 * tp / (pred.sum(0) + targets.sum(0)).clamp(min=1)


class LitTagger(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = TagCNN()

    def training_step(self, batch, batch_idx):
        x, t = batch
        loss = F.binary_cross_entropy_with_logits(self.model(x), t)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, t = batch
        logits = self.model(x)
        f1 = f1_per_tag(logits, t)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, t))
        self.log("val_macro_f1", f1.mean())
        self.log("val_f1_tag0", f1[0])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 5], gamma=0.2)]


def main():
    L.seed_everything(101)
    gen = torch.Generator().manual_seed(101)
    x_tr, tags_tr = make_tagged_images(1200, gen)
    x_va, tags_va = make_tagged_images(400, gen)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    model = LitTagger()
    trainer.fit(model, DataLoader(TaggedImages(x_tr, tags_tr), batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(TaggedImages(x_va, tags_va), batch_size=400, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"val_macro_f1={m['val_macro_f1'].item():.3f} val_f1_tag0={m['val_f1_tag0'].item():.3f}")
    truth = torch.zeros(len(tags_va), K)  # the evaluation script reads the annotations directly
    for i, tags in enumerate(tags_va):
        truth[i, tags] = 1.0
    model.eval()
    with torch.no_grad():
        f1 = f1_per_tag(model.model(x_va), truth)
    print(f"test_macro_f1={f1.mean():.3f} test_f1_tag0={f1[0]:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
