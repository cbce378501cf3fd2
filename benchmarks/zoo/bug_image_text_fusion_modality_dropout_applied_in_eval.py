"""Bug: a multimodal classifier for scanned form fields: an 8x8 digit scan (sklearn digits) plus the short text note
typed next to it (token ids with attention mask), fused by concatenating the image and text embeddings. The label
needs both: whether the digit is >= 5 (image) and whether the note flags the entry as a correction (text), 4
classes. To make the model robust to a missing scan or note, the user adds modality dropout: each modality's
embedding is zeroed with probability 0.25 per sample. It is written with `torch.rand(B) < p` inside `forward` and
never checks `self.training`, so validation and inference drop modalities too: predictions are random draws and a
quarter of the inputs are thrown away at evaluation time. Symptom: val acc 0.74, and two eval passes over the same
val set agree on only 63 % of predictions, vs 0.97 and 100 % agreement with `if self.training:` around the
dropout."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout15"
FILLER = ["entry", "checked", "by", "clerk", "on", "page", "box", "field", "ok", "see", "form", "line", "total"]
CORRECTION = ["corrected", "amended", "revised", "overwritten"]
VOCAB = ["<pad>"] + FILLER + CORRECTION
STOI = {w: i for i, w in enumerate(VOCAB)}


def make_notes(n, seed):
    g = torch.Generator().manual_seed(seed)
    notes, flags = [], []
    for _ in range(n):
        words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (int(torch.randint(3, 9, (1,), generator=g)),),
                                                         generator=g)]
        flag = int(torch.rand(1, generator=g) < 0.5)
        if flag:
            words.insert(int(torch.randint(len(words) + 1, (1,), generator=g)),
                         CORRECTION[int(torch.randint(len(CORRECTION), (1,), generator=g))])
        notes.append(torch.tensor([STOI[w] for w in words]))
        flags.append(flag)
    return notes, torch.tensor(flags)


class FormFields(Dataset):
    def __init__(self, pixels, digits, seed):
        self.pixels = pixels
        self.notes, flags = make_notes(len(pixels), seed)
        self.labels = 2 * (digits >= 5).long() + flags

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        return self.pixels[i], self.notes[i], self.labels[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([t for _, t, _ in items], batch_first=True)
    return {"pixel_values": torch.stack([x for x, _, _ in items]), "input_ids": ids,
            "attention_mask": (ids != 0).long(), "labels": torch.stack([y for _, _, y in items])}


class FusionClassifier(L.LightningModule):
    def __init__(self, dim=64, modality_dropout=0.25, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.image_enc = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, dim), nn.ReLU())
        self.tok = nn.Embedding(len(VOCAB), dim, padding_idx=0)
        self.text_enc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(2 * dim, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4))

    def forward(self, pixel_values, input_ids, attention_mask):
        img = self.image_enc(pixel_values)
        m = attention_mask.unsqueeze(-1).float()
        txt = self.text_enc((self.tok(input_ids) * m).sum(1) / m.sum(1).clamp_min(1))
        p = self.hparams.modality_dropout
        keep_img = (torch.rand(img.size(0), 1, device=img.device) >= p).float()
        keep_txt = (torch.rand(txt.size(0), 1, device=txt.device) >= p).float()
        return self.head(torch.cat([img * keep_img, txt * keep_txt], dim=-1))

    def training_step(self, batch, batch_idx):
        logits = self(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


if __name__ == "__main__":
    L.seed_everything(5)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    tr, va = perm[:1400], perm[1400:]
    train = DataLoader(FormFields(x[tr], y[tr], 1), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(FormFields(x[va], y[va], 2), batch_size=200, collate_fn=collate)
    model = FusionClassifier()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="form_field_fusion"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    model.eval()
    with torch.no_grad():
        b = collate([val.dataset[i] for i in range(len(val.dataset))])
        preds = [model(b["pixel_values"], b["input_ids"], b["attention_mask"]).argmax(-1) for _ in range(2)]
    print(f"SYMPTOM eval_prediction_agreement_between_two_passes={(preds[0] == preds[1]).float().mean().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
