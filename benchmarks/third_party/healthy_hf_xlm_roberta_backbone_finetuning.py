"""Healthy: gradual unfreezing with Lightning's `BaseFinetuning`: a briefly pre-trained HuggingFace XLM-RoBERTa
classifier (2 layers) trains its classification head alone for the first epoch, then the encoder is unfrozen and
added to the optimizer as a new param group at half the learning rate (`unfreeze_and_add_param_group`);
AdamW on the trainable parameters with a per-epoch StepLR decay, as in Lightning's finetuning examples (a per-step
LambdaLR such as `get_linear_schedule_with_warmup` crashes once a param group is added)."""
import lightning as L
import torch
import transformers
from _hf import sentences
from _hf2 import ScoredModule
from _hf3 import choice_accuracy, fit_with
from lightning.pytorch.callbacks import BaseFinetuning

EXPECT = None
SPLIT = "third-party"


def pretrained_xlm_roberta() -> transformers.XLMRobertaForSequenceClassification:
    """A 2-layer XLM-R given a short masked-LM "pre-training" on the same kind of text, its encoder reused."""
    L.seed_everything(1)
    cfg = transformers.XLMRobertaConfig(vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=128, max_position_embeddings=40, pad_token_id=0,
                                        num_labels=2)
    mlm = transformers.XLMRobertaForMaskedLM(cfg)
    opt = torch.optim.AdamW(mlm.parameters(), lr=1e-3)
    for batch in torch.utils.data.DataLoader(sentences(512, 7), batch_size=32):
        ids = batch["input_ids"]
        masked = (torch.rand(ids.shape) < 0.15) & (ids != 0)
        loss = mlm(input_ids=ids.masked_fill(masked, 1), attention_mask=batch["attention_mask"],
                   labels=ids.masked_fill(~masked, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = transformers.XLMRobertaForSequenceClassification(cfg)
    model.roberta.load_state_dict(mlm.roberta.state_dict(), strict=False)
    return model


class FinetuneModule(ScoredModule):
    def configure_optimizers(self):
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=0.01)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)]


class UnfreezeEncoder(BaseFinetuning):
    def __init__(self, at_epoch: int = 1) -> None:
        super().__init__()
        self.at_epoch = at_epoch

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        self.freeze(pl_module.model.roberta)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch == self.at_epoch:
            self.unfreeze_and_add_param_group(pl_module.model.roberta, optimizer, initial_denom_lr=2.0)


if __name__ == "__main__":
    fit_with(pretrained_xlm_roberta(), sentences, lr=2e-3, epochs=6, callbacks=[UnfreezeEncoder()],
             module=FinetuneModule, metric=choice_accuracy, metric_name="acc")
