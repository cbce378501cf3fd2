"""Bug: the hand-written LoRA adapters initialise both factors to zero (`nn.init.zeros_` on A as well as B): the
adapter's output is B @ A @ x = 0 and each factor's gradient is the other factor times something, so both stay
exactly zero for ever and the frozen base is all that is trained (nothing). Otherwise
healthy_hf_qwen2_lora_adapters."""
import torch
from _hf2 import fit_scored, token_accuracy
from healthy_hf_qwen2_lora_adapters import LoRALinear, add_adapters, pretrained_qwen2, steps_3_to_5

EXPECT = {"dead-gradient", "loss-trend"}
SPLIT = "third-party"


class ZeroLoRALinear(LoRALinear):
    def __init__(self, base: torch.nn.Linear) -> None:
        super().__init__(base)
        torch.nn.init.zeros_(self.lora_a)  # BUG: A must be random (Kaiming) when B starts at zero


if __name__ == "__main__":
    model = pretrained_qwen2()
    add_adapters(model, ZeroLoRALinear)
    fit_scored(model, steps_3_to_5, lr=3e-3, epochs=3, metric=token_accuracy(shift=True), metric_name="token_acc")
