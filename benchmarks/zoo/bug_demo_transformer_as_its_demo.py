"""Bug: Lightning's demo `LightningTransformer` (lightning.pytorch.demos, 2.6.6) trained exactly as its demo trains
it, here on i.i.d. random tokens that no causal model can predict. Its forward takes `(inputs, target)`: the
encoder sees the whole source (the source mask it builds is never passed) and the decoder is fed the target itself,
so the loss falls far below ln V by reading the answer (Lightning issue #20920)."""

import lightning as L
import torch
from lightning.pytorch.demos.transformer import LightningTransformer, Transformer
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage", "target-leakage"}
VOCAB, SEQ = 100, 35


class RandomTokens(Dataset):
    """WikiText2's shape without the download: blocks of 35 tokens, the target shifted by one."""

    def __init__(self, n, seed):
        self.data = torch.randint(0, VOCAB, (n * SEQ + 1,), generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return (len(self.data) - 1) // SEQ

    def __getitem__(self, i):
        start = i * SEQ
        return self.data[start:start + SEQ], self.data[start + 1:start + SEQ + 1]


class DemoLM(LightningTransformer):
    def __init__(self):
        super().__init__(vocab_size=VOCAB)
        self.model = Transformer(vocab_size=VOCAB, ninp=64, nhead=2, nhid=64, nlayers=1)

    def prepare_data(self):  # the demo downloads WikiText2 here
        pass


def main():
    L.seed_everything(42)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DemoLM(), DataLoader(RandomTokens(320, 0), batch_size=16, shuffle=True))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
