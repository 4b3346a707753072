"""echoink: GRPO for audio-visual reasoning on the Qwen2.5-Omni thinker (EchoInk-R1)."""

__version__ = "0.1.0"
