"""Bug: steel-surface defect inspection with a small U-Net that has two outputs: a defect segmentation map and
an image-level "defective?" logit. The classification head uses mask-guided attention pooling: decoder features
are averaged over the defect region. To stabilise early training the author feeds the *ground-truth* mask to the
pooling ("teacher forcing the attention") and `validation_step` calls the same `self(image, mask)`, so on
validation too the head is told where - and whether - a defect is: an empty mask pools to a zero vector. The
classification metric looks perfect although the network never learned to decide from the image.
Symptom: reported val defect acc 1.000 vs 0.92 when the head pools with the predicted mask (sigmoid of the
segmentation logits) in training and validation; the buggy model evaluated that honest way scores 0.74."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout14"
SIZE = 32


def make_surfaces(n, seed):
    """Brushed-metal texture (horizontal streaks + noise); half of the plates carry a faint pit or scratch."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    streaks = torch.randn(n, 1, SIZE, 1, generator=g).expand(n, 1, SIZE, SIZE) * 0.6
    img = streaks + 0.5 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    mask = torch.zeros(n, 1, SIZE, SIZE)
    defective = torch.rand(n, generator=g) < 0.5
    for i in torch.nonzero(defective).flatten().tolist():
        cy, cx = (torch.rand(2, generator=g) * (SIZE - 8) + 4).tolist()
        if torch.rand(1, generator=g) < 0.5:  # pit: small disc
            r = 1.5 + 2.0 * float(torch.rand(1, generator=g))
            m = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
        else:  # scratch: thin diagonal segment
            length = 4 + 6 * float(torch.rand(1, generator=g))
            t = (xx - cx) + (yy - cy)
            m = ((xx - cx) - (yy - cy)).abs() <= 1.0
            m &= t.abs() <= length
        mask[i, 0] = m.float()
    img = img - 0.9 * mask  # defects are slightly darker than the plate
    return img, mask, defective.float()


def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class DefectUNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2, self.enc3 = conv_block(1, 16), conv_block(16, 32), conv_block(32, 64)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.dec2 = conv_block(64, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec1 = conv_block(32, 16)
        self.seg_head = nn.Conv2d(16, 1, 1)
        self.cls_head = nn.Sequential(nn.Linear(16, 32), nn.ReLU(inplace=True), nn.Linear(32, 1))

    def forward(self, x, attn_mask=None):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        seg_logits = self.seg_head(d1)
        if attn_mask is None:
            attn_mask = torch.sigmoid(seg_logits)
        pooled = (d1 * attn_mask).sum((2, 3)) / (attn_mask.sum((2, 3)) + 1e-6)
        return seg_logits, self.cls_head(pooled).squeeze(1)

    def _losses(self, batch):
        x, mask, defective = batch
        seg_logits, cls_logit = self(x, mask)  # teacher-forced attention pooling
        seg_loss = F.binary_cross_entropy_with_logits(seg_logits, mask, pos_weight=torch.tensor(5.0))
        cls_loss = F.binary_cross_entropy_with_logits(cls_logit, defective)
        return seg_loss, cls_loss, cls_logit

    def training_step(self, batch, batch_idx):
        seg_loss, cls_loss, _ = self._losses(batch)
        self.log_dict({"train_seg_loss": seg_loss, "train_cls_loss": cls_loss})
        return seg_loss + cls_loss

    def validation_step(self, batch, batch_idx):
        seg_loss, cls_loss, cls_logit = self._losses(batch)
        acc = ((cls_logit > 0).float() == batch[2]).float().mean()
        self.log_dict({"val_seg_loss": seg_loss, "val_cls_loss": cls_loss, "val_acc": acc})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(17)
    train = TensorDataset(*make_surfaces(1200, seed=1))
    val_x, val_mask, val_y = make_surfaces(400, seed=2)
    model = DefectUNet()
    trainer = L.Trainer(
        max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="surface_defect_unet"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val_x, val_mask, val_y), batch_size=100))
    print(f"SYMPTOM reported val_acc={trainer.callback_metrics['val_acc']:.3f}")
    model.eval()
    with torch.no_grad():
        _, logit = model(val_x)  # deployment: no mask available, pool with the predicted map
    print(f"SYMPTOM val acc pooling with predicted mask={((logit > 0).float() == val_y).float().mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
