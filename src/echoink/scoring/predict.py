"""One scoring pass shared by ``echoink eval`` and validation while training: a batch of items
-> prompts -> K completions each -> the rewards' strict parser -> one prediction row per completion.

``Decoding`` and ``EvalSettings`` say everything that decides a prediction; ``predict_batch`` is the
only place either command turns a model's output into a scored row, so a validation accuracy logged
during training and ``echoink eval``'s accuracy on the same model and split are the same number.

Shapes: B items, K completions per item (1 for greedy decoding).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import Sample
from ..data.messages import VideoSettings, decodable_messages
from ..errors import UserError
from .rewards import accuracy_reward, format_reward, parse_answer

_ROW_KEYS = frozenset(
    [
        "id",
        "condition",
        "sample",
        "prompt",
        "decoding",
        "completion",
        "pred",
        "answer",
        "correct",
        "format_ok",
        "length",
        "truncated",
    ]
)
_NOT_GROUPS = frozenset({"reasoning"})  # the synthetic benchmark's reference trace


def short_metadata(sample: Sample) -> dict[str, Any]:
    """The sample's scalar metadata that can group results (strings of at most 40 characters, ints, bools)."""
    return {
        k: v
        for k, v in sample.metadata.items()
        if k not in _ROW_KEYS | _NOT_GROUPS
        and (isinstance(v, bool | int) or (isinstance(v, str) and len(v) <= 40))
    }


DECODING_MODES = ("greedy", "sample")
"""How completions can be drawn (``eval --decoding`` adds ``paper``, EchoInk's fixed sampling)."""


@dataclass(frozen=True)
class Decoding:
    """How completions are drawn: ``greedy`` (one per item) or ``sample`` (``samples`` per item)."""

    mode: str = "greedy"
    samples: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    """Sampling seed; each batch reseeds from it and its item ids, so a resumed run draws the same."""

    def __post_init__(self) -> None:
        if self.mode not in DECODING_MODES:
            raise UserError(f"decoding must be one of {', '.join(DECODING_MODES)}, got {self.mode!r}")
        if self.samples < 1 or (self.mode == "greedy" and self.samples != 1):
            raise UserError(f"samples must be 1 for greedy and >= 1 for sample, got {self.samples}")
        if not self.temperature > 0 or math.isinf(self.temperature) or not 0 < self.top_p <= 1:  # NaN fails
            raise UserError("temperature must be > 0 and top_p in (0, 1]")

    def generate_kwargs(self) -> dict[str, Any]:
        if self.mode == "greedy":
            return {"do_sample": False, "num_return_sequences": 1}
        return {
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": 0,
            "num_return_sequences": self.samples,
        }


@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides a prediction; stored in eval_config.json and checked on resume."""

    template: str = "reasoning"
    decoding: Decoding = field(default_factory=Decoding)
    max_new_tokens: int = 256
    max_audio_seconds: float | None = None
    max_pixels: int | None = 224 * 224
    video: VideoSettings = field(default_factory=VideoSettings)


@torch.no_grad()
def predict_batch(
    model: torch.nn.Module, engine: Any, samples: Sequence[Sample], condition: str, settings: EvalSettings
) -> list[dict[str, Any]]:
    """Generate K completions for each of the B samples under ``condition``; B*K prediction rows."""
    if len({s.data_type for s in samples if s.video is not None}) > 1:
        # transformers' generate takes one use_audio_in_video per batch: sounding videos go apart.
        sounding = [s for s in samples if s.data_type == "video_audio"]
        rest = [s for s in samples if s.data_type != "video_audio"]
        rows = [
            r for part in (rest, sounding) for r in predict_batch(model, engine, part, condition, settings)
        ]
        by_id = {s.id: i for i, s in enumerate(samples)}
        return sorted(rows, key=lambda r: (by_id[r["id"]], r["sample"]))
    dec = settings.decoding
    # Rows load in skip mode: a file that fails to decode now is left out with a warning, not fatal.
    samples, messages = decodable_messages(
        samples, settings.template, settings.max_audio_seconds, settings.max_pixels, "skip", condition,
        settings.video, geometry=engine.geometry,
    )  # fmt: skip
    if not samples:
        return []
    param = next(model.parameters())
    prompts = engine.encode(messages).to(param.device, param.dtype)
    if dec.mode == "sample":
        torch.manual_seed(dec.seed + zlib.crc32("\n".join([condition, *(s.id for s in samples)]).encode()))
    ids = engine.generate(model, prompts, max_new_tokens=settings.max_new_tokens, **dec.generate_kwargs())
    ids = ids.cpu()  # [B*K, T], sample-major: rows i*K .. i*K+K-1 belong to sample i
    texts = engine.decode(ids)
    is_stop = torch.isin(ids, torch.tensor(engine.stop_token_ids()))  # [B*K, T]
    stopped = is_stop.any(dim=1)
    lengths = torch.where(stopped, is_stop.int().argmax(dim=1), ids.shape[1])
    k = dec.samples
    solutions = [s.solution for s in samples for _ in range(k)]
    correct = accuracy_reward(texts, solutions)
    format_ok = format_reward(texts)
    rows = []
    for n, text in enumerate(texts):
        s = samples[n // k]
        row = {
            "id": s.id,
            "condition": condition,
            "sample": n % k,
            "prompt": settings.template,
            "decoding": dec.mode,
            "completion": text,
            "pred": parse_answer(text),
            "answer": s.answer,
            "correct": correct[n] == 1.0,
            "format_ok": format_ok[n] == 1.0,
            "length": int(lengths[n]),
            "truncated": not bool(stopped[n]),
        }
        rows.append({**short_metadata(s), **row})
    return rows
