"""The model layer: the only place that knows transformers model classes.

tokenizer.py (a locally trained Omni-style tokenizer), tiny.py (tiny thinker + real processor),
inputs.py (messages -> ModelInputs, placeholder suppression, generation), loading.py (policy,
reference, LoRA, freezing), saving.py (weights + processor for eval and plain transformers).
"""

from .inputs import (
    ModelInputs,
    encode_prompts,
    generate,
    generation_config,
    stop_token_ids,
    suppressed_token_ids,
)
from .tiny import build_tiny

__all__ = [
    "ModelInputs",
    "build_tiny",
    "encode_prompts",
    "generate",
    "generation_config",
    "stop_token_ids",
    "suppressed_token_ids",
]
