"""The model layer: the only place that knows transformers model classes, towers, positions and media keys.

engine.py (the interface rl/, sft.py and eval/ use), mm.py (MMInputs, PromptBatch), families/ (one
adapter per model family: qwen2_5_omni, qwen3_omni_moe), passes.py (shared / repeat log-prob passes),
decode.py (shared-prefix decode loop), kv_cache.py (reserved decode cache), loading.py (policy,
reference, LoRA, freezing), saving.py. Tiny models and their tokenizers are ``echoink.testing``'s.

Pitfalls of transformers' Omni classes (each is handled where named; versions: docs/architecture.md):
- ``vision_start_token_id`` is not a declared thinker-config field, but ``get_rope_index`` reads it:
  unset, every image prompt fails (echoink.testing's tiny_thinker_config sets it; loading.thinker_config
  fills it in).
- ``mrope_section`` must sum to head_dim / 2 (echoink.testing.tiny_common.mrope_section).
- Omni's special tokens must be *added* tokens or they are byte-split, and the processor reads
  ``image_token``/``audio_bos_token``/... attributes from the tokenizer (echoink.testing.train_tokenizer).
- A random model emits placeholder tokens; one in a completion breaks the next forward, so generation
  suppresses them (each family's ``placeholder_tokens``).
- LoRA target names (q_proj, gate_proj, ...) also occur in the audio and vision towers; the LoRA
  config matches them inside the language model only (Family.lora_target_regex).
"""

from .engine import CompletionScorer, Engine, thinker_of
from .families import FAMILIES, family_for
from .loading import adapters_disabled, load_policy, load_processor, load_reference, load_thinker
from .mm import MMInputs, PromptBatch
from .saving import save_model

__all__ = [
    "FAMILIES",
    "CompletionScorer",
    "Engine",
    "MMInputs",
    "PromptBatch",
    "adapters_disabled",
    "family_for",
    "load_policy",
    "load_processor",
    "load_reference",
    "load_thinker",
    "save_model",
    "thinker_of",
]
