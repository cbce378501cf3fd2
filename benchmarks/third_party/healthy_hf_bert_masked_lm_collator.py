"""Healthy: HuggingFace BERT masked LM, batches made by `DataCollatorForLanguageModeling` (15 % of the tokens
chosen, 80/10/10 mask/random/keep, labels -100 elsewhere), the loss inside the model."""
import lightning as L
import torch
import transformers
from _hf import HFModule, tokens
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "third-party"


class Vocab:
    """The few attributes of a tokenizer that the collator reads (no download)."""

    mask_token, pad_token, mask_token_id, pad_token_id = "[MASK]", "[PAD]", 3, 0
    all_special_ids = [0, 3]

    def __len__(self):
        return 64

    def get_special_tokens_mask(self, ids, already_has_special_tokens=True):
        return [int(i in (0, 3)) for i in ids]

    def convert_tokens_to_ids(self, token):
        return 3 if token == "[MASK]" else 0


def unlabelled(n, seed):
    return [{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]} for b in tokens(n, seed)]


if __name__ == "__main__":
    L.seed_everything(0)
    collate = transformers.DataCollatorForLanguageModeling(Vocab(), mlm=True, mlm_probability=0.15)
    train = DataLoader(unlabelled(1024, 1), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(unlabelled(256, 2), batch_size=64, collate_fn=collate)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, max_position_embeddings=32)
    trainer = L.Trainer(max_epochs=4, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        log_every_n_steps=10)
    trainer.fit(HFModule(transformers.BertForMaskedLM(cfg), 1e-3), train, val)
    print({k: round(float(v), 3) for k, v in trainer.callback_metrics.items()})
    print(f"LOG_DIR={trainer.log_dir}")
