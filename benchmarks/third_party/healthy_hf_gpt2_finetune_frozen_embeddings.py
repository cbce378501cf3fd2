"""Healthy: fine-tuning a GPT-2 briefly pre-trained in the script, with the token and position embeddings frozen
(requires_grad=False) and the optimizer given only the trainable parameters."""
import lightning as L
import torch
import transformers
from _hf import fit, tokens

EXPECT = None
SPLIT = "third-party"

if __name__ == "__main__":
    L.seed_everything(1)
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=64, n_layer=2, n_head=4, bos_token_id=1,
                                  eos_token_id=1, tie_word_embeddings=False)
    model = transformers.GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in torch.utils.data.DataLoader(tokens(512, 7), batch_size=32):  # a short "pre-training"
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    for p in (*model.transformer.wte.parameters(), *model.transformer.wpe.parameters()):
        p.requires_grad_(False)
    fit(model, tokens, lr=5e-4, epochs=2)
