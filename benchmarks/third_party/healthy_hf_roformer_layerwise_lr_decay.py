"""Healthy: layer-wise learning-rate decay on a HuggingFace RoFormer classifier (2 layers, rotary position
embeddings inside attention, random init): one AdamW param group per depth, the head at the base rate, each layer
below at 0.8x the one above, embeddings lowest, biases and norms without weight decay, linear warm-up and decay."""
import torch
import transformers
from _hf import sentences
from _hf2 import ScoredModule, fit_scored
from _hf3 import choice_accuracy

EXPECT = None
SPLIT = "third-party"


class LayerwiseDecayModule(ScoredModule):
    def configure_optimizers(self):
        roformer, decay = self.model.roformer, 0.8
        depth = len(roformer.encoder.layer)
        stacks = [list(roformer.embeddings.parameters()) + list(getattr(roformer, "embeddings_project",
                                                                        torch.nn.Identity()).parameters())]
        stacks += [list(layer.parameters()) for layer in roformer.encoder.layer]
        stacks.append(list(self.model.classifier.parameters()))
        groups = []
        for depth_index, params in enumerate(stacks):
            lr = self.lr * decay ** (depth + 1 - depth_index)
            groups.append({"params": [p for p in params if p.ndim >= 2], "lr": lr, "weight_decay": 0.01})
            groups.append({"params": [p for p in params if p.ndim < 2], "lr": lr, "weight_decay": 0.0})
        opt = torch.optim.AdamW(groups, lr=self.lr)
        total = self.trainer.estimated_stepping_batches
        sched = transformers.get_linear_schedule_with_warmup(opt, max(1, total // 10), total)
        return [opt], [{"scheduler": sched, "interval": "step"}]


if __name__ == "__main__":
    cfg = transformers.RoFormerConfig(vocab_size=64, embedding_size=64, hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=128, max_position_embeddings=32,
                                      num_labels=2)
    fit_scored(transformers.RoFormerForSequenceClassification(cfg), sentences, lr=2e-3, epochs=4,
               module=LayerwiseDecayModule, metric=choice_accuracy, metric_name="acc")
