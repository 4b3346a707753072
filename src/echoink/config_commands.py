"""The recipe's sections for the commands around training: ``eval``, ``sft`` and ``demo``; each field is
documented once, by the string under it (the training sections: ``config_sections``).

``echoink.config`` assembles them into ``Config`` and loads YAML recipes; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config_sections import _check


@dataclass
class EvalConfig:
    template: str = "reasoning"
    """Prompt template for evaluation (the same for every model compared)."""
    decoding: str = "greedy"
    """greedy or sample."""
    samples: int = 1
    """Samples per item when decoding=sample."""
    batch_size: int = 16
    """Prompts per generation batch (left padded)."""
    max_new_tokens: int = 128
    """Longest completion at evaluation."""
    max_items: int | None = None
    """Validation while training uses only the first N items of ``data.val_path`` (a fixed subset)."""

    def __post_init__(self) -> None:
        _check(
            self.decoding in ("greedy", "sample"),
            "eval.decoding",
            f"must be greedy or sample, got {self.decoding!r}",
        )
        _check(
            self.samples >= 1 and self.batch_size >= 1 and self.max_new_tokens >= 1,
            "eval",
            "samples, batch_size, max_new_tokens must be >= 1",
        )
        _check(self.max_items is None or self.max_items >= 1, "eval.max_items", "must be >= 1 or null")


@dataclass
class SFTConfig:
    output_dir: str = "runs/sft"
    """Where the fine-tuned model (final/), metrics.jsonl and config.yaml go."""
    trace_field: str = "reasoning"
    """Row field holding the target completion ("<think>...</think><answer>X</answer>")."""
    max_steps: int = 200
    """Optimiser steps."""
    batch_size: int = 16
    """Prompts per step."""
    lr: float = 1e-3
    """AdamW learning rate (constant after warm-up)."""
    warmup_steps: int = 10
    """Linear warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seeds data order and initialisation of anything random."""
    save_every: int = 0
    """Also save the model as ``step-N/`` every N steps (0: only ``final/``); for finding the cold-start length."""

    def __post_init__(self) -> None:
        _check(self.save_every >= 0, "sft.save_every", "must be >= 0")
        for name in ("max_steps", "batch_size"):
            _check(getattr(self, name) >= 1, f"sft.{name}", "must be >= 1")
        _check(0 < self.lr <= 1, "sft.lr", "must be in (0, 1] (see train.lr)")
        _check(self.warmup_steps >= 0, "sft.warmup_steps", "must be >= 0")


@dataclass
class DemoConfig:
    seed: int = 0
    """Seeds the benchmark, the tiny model and every stage."""
    train_items: int = 2000
    """Synthetic training questions (SFT and GRPO draw from them)."""
    test_items: int = 1000
    """Held-out questions the reported accuracies are measured on."""
    difficulty: str = "easy"
    """Benchmark difficulty (see ``echoink data synth --difficulty``)."""
    families: list[str] = field(default_factory=list)
    """Question families to generate (empty: all of them, see ``echoink data synth --families``)."""
    hidden: int = 128
    """Tiny model width."""
    layers: int = 2
    """Tiny model depth."""
    vocab: int = 1024
    """Tiny model embedding rows."""
    rope_theta: float = 1e6
    """Tiny model rotary base (the 7B's 1e6 leaves image columns indistinguishable with 16-wide heads)."""
    family: str = "qwen2.5-omni"
    """Tiny model family: qwen2.5-omni or qwen3-omni (MoE)."""
    modality: str = "image"
    """image: the image + audio-clip families; video: the tone_when clips (video with its soundtrack)."""
    audio_conv_gain: float = 0.0
    """> 0: redraw the tiny audio tower's convolutions with std gain/sqrt(fan_in) (0: the config's 0.02,
    under which a tone barely changes the tower's output; see ``model.tiny_common.rescale_audio_convs``)."""
    video_palette: str = "drawn"
    """video only: drawn (four of five colours a clip, options shuffled) or fixed (the same four colours,
    options always A. red .. D. blue; see ``data.synth_video.VideoSpec``)."""
    video_trace: str = "moment"
    """video only: the cold start's reasoning, moment ("The tone sounds in second 2. At that moment the
    screen shows blue.") or seconds (one line per second: colour, and tone or silent)."""
    glance_stage_steps: int = 0
    """video only: > 0 adds a second cold-start stage of this many SFT steps on the same training clips,
    with a fraction ``glance_traces`` of their traces swapped for a one-frame glance ("The screen starts
    red.", right only when the tone sounds in the first second): a base that prefers a shortcut, with
    the audio-visual trace still in reach for GRPO to find (README, video demo)."""
    glance_traces: float = 0.0
    """video only: the glance stage's share of glance traces (see ``glance_stage_steps``)."""

    def __post_init__(self) -> None:
        _check(
            self.modality in ("image", "video"),
            "demo.modality",
            f"must be image or video, got {self.modality!r}",
        )
        _check(
            self.family in ("qwen2.5-omni", "qwen3-omni"), "demo.family", f"unknown family {self.family!r}"
        )
        _check(self.train_items >= 16 and self.test_items >= 1, "demo.train_items/test_items", "too small")
        from .data.synth_video import PALETTES, TRACES  # the one list of each

        _check(
            self.video_palette in PALETTES,
            "demo.video_palette",
            f"must be one of {', '.join(PALETTES)}, got {self.video_palette!r}",
        )
        _check(
            self.video_trace in TRACES,
            "demo.video_trace",
            f"must be one of {', '.join(TRACES)}, got {self.video_trace!r}",
        )
        _check(0.0 <= self.glance_traces <= 1.0, "demo.glance_traces", "must be in [0, 1]")
        _check(self.glance_stage_steps >= 0, "demo.glance_stage_steps", "must be >= 0")
        _check(
            not self.glance_stage_steps or (self.glance_traces > 0 and self.modality == "video"),
            "demo.glance_stage_steps",
            "needs demo.modality video and demo.glance_traces > 0",
        )
