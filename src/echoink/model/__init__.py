"""The model layer: the only place that knows transformers model classes.

tokenizer.py (a locally trained Omni-style tokenizer), tiny.py (tiny thinker + real processor),
inputs.py (messages -> ModelInputs, placeholder suppression, generation), loading.py (policy,
reference, LoRA, freezing), saving.py (weights + processor for eval and plain transformers).

Pitfalls measured with transformers 5.23 (each is handled where named):
- ``vision_start_token_id`` is not a declared thinker-config field, but ``get_rope_index`` reads it:
  unset, every image prompt fails (tiny.tiny_thinker_config sets it; loading.thinker_config fills it in).
- ``mrope_section`` must sum to head_dim / 2 (tiny._mrope_section).
- Omni's special tokens must be *added* tokens or they are byte-split, and the processor reads
  ``image_token``/``audio_bos_token``/... attributes from the tokenizer (tokenizer.train_tokenizer).
- A random model emits placeholder tokens; one in a completion breaks the next forward, so generation
  suppresses them (inputs.PLACEHOLDER_TOKENS, the one list).
- LoRA target names (q_proj, gate_proj, ...) also occur in the audio and vision towers; the LoRA
  config matches them inside the language model only (loading.lora_config).
"""

from .inputs import (
    ModelInputs,
    encode_prompts,
    generate,
    generation_config,
    stop_token_ids,
    suppressed_token_ids,
)
from .loading import adapters_disabled, load_policy, load_processor, load_reference, load_thinker
from .saving import save_model
from .tiny import build_tiny, build_tiny_full, make_tiny

__all__ = [
    "ModelInputs",
    "adapters_disabled",
    "build_tiny",
    "build_tiny_full",
    "load_policy",
    "load_processor",
    "load_reference",
    "load_thinker",
    "make_tiny",
    "save_model",
    "encode_prompts",
    "generate",
    "generation_config",
    "stop_token_ids",
    "suppressed_token_ids",
]
