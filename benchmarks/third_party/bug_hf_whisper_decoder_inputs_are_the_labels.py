"""Bug: the collate hands HuggingFace Whisper `decoder_input_ids` itself, and hands it the target tokens
unshifted (a hand-written speech collate that forgot to prepend the decoder start token and shift right): decoder
position t reads target token t, the one it must predict, so teacher forcing turns into copying and generation,
which has no target to read, fails. Same model and data as healthy_hf_whisper_transcribe. Measured: teacher-forced
val token accuracy 1.0 (healthy 0.996), greedy decoding of the 256 validation inputs exact on 0 % of them (token
accuracy 0.05) against 97 % for the healthy twin."""
import transformers
from _hf2 import fit_scored, mel_notes, token_accuracy
from healthy_hf_whisper_transcribe import whisper_config

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "third-party"


def with_decoder_inputs(n: int, seed: int) -> list[dict]:
    items = mel_notes(n, seed)
    for item in items:
        item["decoder_input_ids"] = item["labels"].clamp(min=0)  # padding -100 -> pad id 0; should be shifted right
    return items


if __name__ == "__main__":
    fit_scored(transformers.WhisperForConditionalGeneration(whisper_config()), with_decoder_inputs, lr=3e-3,
               epochs=12, metric=token_accuracy(shift=False), metric_name="token_acc")
