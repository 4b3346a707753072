"""The lab's recipes: an echoink ``Config`` plus the lab's own ``demo:`` section (benchmark sizes and the
tiny model), shipped as package data in ``recipes/``.

>>> cfg, d = load_lab_recipe(recipe("demo.yaml"), ["demo.train_items=100", "train.max_steps=3"])
>>> d.train_items, d.families, cfg.train.max_steps
(100, ['tone_where'], 3)
>>> import dataclasses, echoink.config
>>> "demo" in {f.name for f in dataclasses.fields(echoink.config.Config)}
False
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from echoink.config import Config, ConfigError, load_recipe

from .synth_video import PALETTES, TRACES  # the one list of each

RECIPES = ("demo.yaml", "demo_video.yaml", "shortcut_cpu.yaml")
"""The recipes the package ships (``echoink_lab/recipes/``)."""


def recipe(name: str) -> Traversable:
    """The shipped recipe ``name`` (package data: found from an installed wheel as from the source tree)."""
    if name not in RECIPES:
        raise ConfigError(f"unknown lab recipe {name!r}; shipped: {', '.join(RECIPES)}")
    return files("echoink_lab").joinpath("recipes", name)


def load_lab_recipe(
    source: str | Path | Traversable | None, overrides: list[str] | None = None
) -> tuple[Config, DemoConfig]:
    """A lab recipe with dotted overrides (``demo.*`` to the lab's section, the rest to echoink's)."""
    cfg, own = load_recipe(source, overrides, {"demo": DemoConfig})
    return cfg, own["demo"]


def save_lab_recipe(cfg: Config, d: DemoConfig, path: Path) -> None:
    """Write ``d`` and ``cfg`` as one lab recipe (``load_lab_recipe`` reads it back to the same values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"demo": dataclasses.asdict(d), **cfg.to_dict()}, sort_keys=False))


def _check(cond: bool, name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}")


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
    under which a tone barely changes the tower's output; see ``echoink.testing.tiny_common.rescale_audio_convs``)."""
    video_palette: str = "drawn"
    """video only: drawn (four of five colours a clip, options shuffled) or fixed (the same four colours,
    options always A. red .. D. blue; see ``synth_video.VideoSpec``)."""
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
    grpo_seeds: int = 1
    """GRPO runs from the same base, seeds ``train.seed`` .. + n-1, each evaluated and paired-tested
    against the base (two runs of one recipe differed by 2 points: one seed cannot show a gain)."""
    base_samples: int = 0
    """> 0: the base also sampled this many times per test item at T = 1 (no ablation), for its pass@k
    beside GRPO's pass@1: whether GRPO re-selects what the base already samples."""

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
            self.grpo_seeds >= 1 and self.base_samples >= 0,
            "demo.grpo_seeds/base_samples",
            "must be >= 1 / >= 0",
        )
        _check(
            not self.glance_stage_steps or (self.glance_traces > 0 and self.modality == "video"),
            "demo.glance_stage_steps",
            "needs demo.modality video and demo.glance_traces > 0",
        )
