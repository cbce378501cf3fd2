"""Healthy: Lightning's demo `Transformer` trained as a next-token language model on synthetic token streams
(noisy repetitions of a few fixed motifs shared by both splits, seeded torch.Generator), NLL on log-probabilities,
Adam, with the demo's two leaks closed (see bug_demo_transformer_as_its_demo): the source mask it builds is passed
to the encoder (and as the memory mask), and the decoder is fed the inputs, the target shifted right, not the
target. Validation loss ends near 0.93 against a unigram prior of about 3.5."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.demos import Transformer
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
VOCAB, SEQ = 64, 32


class MotifStream(Dataset):
    def __init__(self, n, seed):
        # The same motifs in every split (seed 0); the streams drawn from them differ by split.
        motifs = torch.randint(0, VOCAB, (6, 8), generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(seed + 1000)
        picks = torch.randint(0, 6, (n, SEQ // 8 + 1), generator=g)
        stream = motifs[picks].reshape(n, -1)
        noise = torch.rand(stream.shape, generator=g) < 0.05
        stream = torch.where(noise, torch.randint(0, VOCAB, stream.shape, generator=g), stream)
        self.data = stream[:, : SEQ + 1]

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i, :-1], self.data[i, 1:]


class CausalTransformer(Transformer):
    def forward(self, inputs, target, mask=None):
        causal = self.generate_square_subsequent_mask(inputs.shape[1]).to(inputs.device)
        src = self.pos_encoder(self.embedding(inputs) * math.sqrt(self.ninp))
        output = self.transformer(src, src, src_mask=causal, tgt_mask=causal, memory_mask=causal)
        return F.log_softmax(self.decoder(output), dim=-1).view(-1, self.vocab_size)


class LanguageModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = CausalTransformer(vocab_size=VOCAB, ninp=64, nhead=2, nhid=128, nlayers=2, dropout=0.1)

    def training_step(self, batch, batch_idx):
        inputs, target = batch
        output = self.model(inputs, target)
        loss = F.nll_loss(output, target.view(-1))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        inputs, target = batch
        self.log("val_loss", F.nll_loss(self.model(inputs, target), target.view(-1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=3e-3)


def main():
    L.seed_everything(42)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=0.25, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LanguageModel(), DataLoader(MotifStream(384, 0), batch_size=32, shuffle=True),
                DataLoader(MotifStream(64, 1), batch_size=32))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
