"""Healthy: token-level knowledge distillation for sequence tagging. A BiGRU teacher is first trained (plain PyTorch
loop, before Lightning) on a tagging task whose tags depend on the token and on its neighbours two positions away;
it is then frozen (`requires_grad_(False)`, kept in eval mode inside `on_train_epoch_start` so no dropout noise
reaches the targets) and stored on the LightningModule. The student is a small 1-D convolutional tagger. Loss =
0.5 * CE(student, gold, ignore_index=-100) + 0.5 * T^2 * KL(student_T || teacher_T) at T = 2, the KL summed over tags
and averaged over non-padding tokens only. Padded dict batches. Final: student val token accuracy 0.79, matching the
teacher's 0.79."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
PAD, VOCAB, N_TAGS, MAX_LEN = 0, 50, 5, 30


def make_sentences(n, seed):
    g = torch.Generator().manual_seed(seed)
    token_tag = torch.randint(0, N_TAGS, (VOCAB,), generator=torch.Generator().manual_seed(77))
    rows = []
    for _ in range(n):
        k = int(torch.randint(10, MAX_LEN + 1, (1,), generator=g))
        ids = torch.randint(1, VOCAB, (k,), generator=g)
        base = token_tag[ids]
        left = torch.cat([torch.zeros(2, dtype=torch.long), base[:-2]])
        right = torch.cat([base[2:], torch.zeros(2, dtype=torch.long)])
        tags = torch.where(left == right, (base + 1) % N_TAGS, base)
        flip = torch.rand(k, generator=g) < 0.03
        tags[flip] = torch.randint(0, N_TAGS, (int(flip.sum()),), generator=g)
        rows.append((ids, tags))
    return rows


class Tagged(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i][0], "labels": self.rows[i][1]}


def collate(items):
    ids = nn.utils.rnn.pad_sequence([it["input_ids"] for it in items], batch_first=True, padding_value=PAD)
    labels = nn.utils.rnn.pad_sequence([it["labels"] for it in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class GRUTeacher(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gru = nn.GRU(d, d, num_layers=2, batch_first=True, bidirectional=True, dropout=0.2)
        self.out = nn.Linear(2 * d, N_TAGS)

    def forward(self, input_ids):
        return self.out(self.gru(self.embed(input_ids))[0])


class ConvStudent(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.conv1 = nn.Conv1d(d, d, 5, padding=2)
        self.conv2 = nn.Conv1d(d, d, 3, padding=1)
        self.out = nn.Linear(d, N_TAGS)

    def forward(self, input_ids):
        x = self.embed(input_ids).transpose(1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x)) + x
        return self.out(x.transpose(1, 2))


def train_teacher(loader, epochs=4):
    teacher = GRUTeacher()
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for _ in range(epochs):
        for b in loader:
            loss = F.cross_entropy(teacher(b["input_ids"]).transpose(1, 2), b["labels"], ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return teacher.eval().requires_grad_(False)


class Distiller(L.LightningModule):
    def __init__(self, teacher, temperature=2.0, alpha=0.5, lr=3e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        self.teacher = teacher
        self.student = ConvStudent()

    def on_train_epoch_start(self):
        self.teacher.eval()

    def training_step(self, batch, batch_idx):
        t, a = self.hparams.temperature, self.hparams.alpha
        logits = self.student(batch["input_ids"])
        with torch.no_grad():
            teacher_logits = self.teacher(batch["input_ids"])
        keep = batch["attention_mask"].bool()
        ce = F.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=-100)
        kl = F.kl_div(F.log_softmax(logits[keep] / t, -1), F.log_softmax(teacher_logits[keep] / t, -1),
                      reduction="batchmean", log_target=True) * t * t
        loss = (1 - a) * ce + a * kl
        self.log_dict({"train_loss": loss, "train_ce": ce, "train_kl": kl})
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.student(batch["input_ids"])
        keep = batch["labels"] != -100
        self.log("val_loss", F.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=-100))
        self.log("val_acc", (logits.argmax(-1)[keep] == batch["labels"][keep]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.student.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


@torch.no_grad()
def accuracy(model, loader):
    hits, n = 0, 0
    for b in loader:
        keep = b["labels"] != -100
        hits += (model(b["input_ids"]).argmax(-1)[keep] == b["labels"][keep]).sum().item()
        n += keep.sum().item()
    return hits / n


def main():
    L.seed_everything(149)
    train = DataLoader(Tagged(make_sentences(3000, 1)), batch_size=64, shuffle=True, collate_fn=collate)
    val = DataLoader(Tagged(make_sentences(500, 2)), batch_size=250, collate_fn=collate)
    teacher = train_teacher(train)
    model = Distiller(teacher)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="distill_tagger"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    print(f"SYMPTOM student val acc {trainer.callback_metrics['val_acc'].item():.3f} "
          f"teacher val acc {accuracy(teacher, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
