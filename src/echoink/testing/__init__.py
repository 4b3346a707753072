"""Tiny models and tokenizers for tests, demos and benches: a randomly initialised Qwen2.5-Omni or
Qwen3-Omni (MoE) thinker with the real processor and a locally trained tokenizer, built in seconds,
offline.

A client of the library like any user's script: ``echoink`` itself never imports it (only the CLI's
app layer dispatches ``echoink model tiny`` here; ``tests/test_boundary.py`` holds the rule).
tiny.py (Qwen2.5-Omni, and the dispatch on the family), tiny_qwen3.py (Qwen3-Omni MoE), tiny_common.py
(their shared parts), tokenizer.py (locally trained tokenizers with each family's special tokens).
"""

from .tiny import TINY_FAMILIES, build_tiny, build_tiny_full, make_tiny
from .tokenizer import train_tokenizer

__all__ = ["TINY_FAMILIES", "build_tiny", "build_tiny_full", "make_tiny", "train_tokenizer"]
