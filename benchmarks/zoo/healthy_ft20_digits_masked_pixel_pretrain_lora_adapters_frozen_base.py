"""Healthy: self-supervised pretraining then parameter-efficient fine-tuning on sklearn's digits. Stage 1 pretrains
an MLP encoder as a masked autoencoder over 2x2 pixel patches (half of the 16 patches hidden, loss on the hidden
pixels only). Stage 2 freezes every pretrained weight and wraps each encoder Linear in a LoRA adapter (rank 4,
alpha 8, A Kaiming-uniform, B zero-initialised so the adapted model starts equal to the pretrained one); only the
adapters and a new classification head train, with AdamW and a OneCycle schedule, on 400 labelled images.
Final val acc 0.911 (val loss 0.29) with 2186 trainable parameters."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout20"

# which of the 16 2x2 patches each of the 64 pixels belongs to
PATCH_OF_PIXEL = torch.tensor([(r // 2) * 4 + (c // 2) for r in range(8) for c in range(8)])


def make_encoder():
    return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64), nn.GELU())


class MaskedPixelAE(L.LightningModule):
    def __init__(self, mask_ratio=0.5):
        super().__init__()
        self.encoder = make_encoder()
        self.decoder = nn.Linear(64, 64)
        self.mask_ratio = mask_ratio

    def training_step(self, batch, batch_idx):
        (x,) = batch
        hidden_patches = torch.rand(x.shape[0], 16, device=x.device) < self.mask_ratio
        mask = hidden_patches[:, PATCH_OF_PIXEL.to(x.device)]
        recon = self.decoder(self.encoder(x.masked_fill(mask, 0.0)))
        loss = F.mse_loss(recon[mask], x[mask])
        self.log("mae_loss", loss, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=0.05)


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank=4, alpha=8.0):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling


def add_lora(module, rank=4, alpha=8.0):
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank, alpha))
        else:
            add_lora(child, rank, alpha)
    return module


class LoRAClassifier(L.LightningModule):
    def __init__(self, encoder, lr=2e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = add_lora(encoder)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1206)
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)

    mae = MaskedPixelAE()
    pre = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                    enable_checkpointing=False, enable_model_summary=False)
    pre.fit(mae, DataLoader(TensorDataset(X), batch_size=64, shuffle=True))

    X_tr, X_va, y_tr, y_va = train_test_split(X, y, train_size=400, stratify=y, random_state=4)
    model = LoRAClassifier(mae.encoder)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(X_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} trainable={n_train}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
