"""Healthy: a CLIP-style image-text model on sklearn digits paired with templated captions ("a scan of the number
seven", "handwritten 7", "number 7 ( seven )", ...): an MLP image tower, a masked-mean text tower (dict batches with
`input_ids`/`attention_mask`), symmetric InfoNCE over in-batch negatives (same-digit captions in the batch are false
negatives, so the loss stays well above zero), and CLIP's learnable log logit scale initialised at 1/0.07 and
clamped at 100. Evaluated by zero-shot classification with the prompt "the digit <name>". Final: val zero-shot acc
0.95, learned logit scale 14."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = [["a", "scan", "of", "the", "number", "{w}"], ["handwritten", "{d}"], ["the", "digit", "{w}"],
             ["a", "{w}", "written", "by", "hand"], ["{d}", "on", "a", "form"], ["number", "{d}", "(", "{w}", ")"]]
VOCAB = ["<pad>"] + sorted({t for tpl in TEMPLATES for t in tpl if "{" not in t} | set(NAMES)
                           | {str(d) for d in range(10)})
STOI = {w: i for i, w in enumerate(VOCAB)}


def caption(digit, g):
    tpl = TEMPLATES[int(torch.randint(len(TEMPLATES), (1,), generator=g))]
    words = [t.format(w=NAMES[digit], d=digit) for t in tpl]
    return torch.tensor([STOI[w] for w in words])


class ImageCaptions(Dataset):
    def __init__(self, images, digits, seed):
        g = torch.Generator().manual_seed(seed)
        self.images, self.digits = images, digits
        self.captions = [caption(int(d), g) for d in digits]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.captions[i], self.digits[i]


def collate(items):
    ids = nn.utils.rnn.pad_sequence([c for _, c, _ in items], batch_first=True)
    return {"pixel_values": torch.stack([x for x, _, _ in items]), "input_ids": ids,
            "attention_mask": (ids != 0).long(), "digits": torch.stack([d for _, _, d in items])}


class DigitCLIP(L.LightningModule):
    def __init__(self, dim=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.image_tower = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, dim))
        self.tok = nn.Embedding(len(VOCAB), 64, padding_idx=0)
        self.text_tower = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, dim))
        self.logit_scale = nn.Parameter(torch.tensor(1 / 0.07).log())

    def encode_image(self, pixel_values):
        return F.normalize(self.image_tower(pixel_values), dim=-1)

    def encode_text(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.tok(input_ids) * m).sum(1) / m.sum(1)
        return F.normalize(self.text_tower(pooled), dim=-1)

    def forward(self, batch):
        img = self.encode_image(batch["pixel_values"])
        txt = self.encode_text(batch["input_ids"], batch["attention_mask"])
        logits = self.logit_scale.exp().clamp(max=100) * img @ txt.T
        target = torch.arange(len(img), device=img.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def training_step(self, batch, batch_idx):
        loss = self(batch)
        self.log("train_loss", loss)
        self.log("logit_scale", self.logit_scale.exp())
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(batch))
        self.log("val_zero_shot_acc", zero_shot_acc(self, batch), prog_bar=True)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and not n.startswith("tok")]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or n.startswith("tok")]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=self.hparams.lr)


def zero_shot_acc(model, batch):
    prompts = nn.utils.rnn.pad_sequence([torch.tensor([STOI[w] for w in ["the", "digit", NAMES[d]]])
                                         for d in range(10)], batch_first=True).to(batch["input_ids"].device)
    classes = model.encode_text(prompts, (prompts != 0).long())
    pred = (model.encode_image(batch["pixel_values"]) @ classes.T).argmax(-1)
    return (pred == batch["digits"]).float().mean()


if __name__ == "__main__":
    L.seed_everything(7)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:1400], perm[1400:]
    train = DataLoader(ImageCaptions(x[tr], y[tr], 1), batch_size=64, shuffle=True, collate_fn=collate,
                       drop_last=True)
    val = DataLoader(ImageCaptions(x[va], y[va], 2), batch_size=200, collate_fn=collate)
    model = DigitCLIP()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="digit_clip"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    print(f"SYMPTOM final_logit_scale={model.logit_scale.exp().item():.2f}")
    print(f"SYMPTOM val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"SYMPTOM val_zero_shot_acc={trainer.callback_metrics['val_zero_shot_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")
