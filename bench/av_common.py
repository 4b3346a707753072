"""Shared set-up for the audio+image benchmarks: a tiny Omni thinker, real media, one GRPO-shaped step.

Not a benchmark itself. ``one_step`` is what rollout_sharing / av_step / profile_step time: one
rollout (G completions per prompt, exactly ``new_tokens`` tokens: stop ids are blocked with
``min_new_tokens`` so both modes do the same work), a reference log-prob forward when β > 0, and the
policy's log-prob forward + backward. ``mode`` "shared" = towers + prompt prefill once per prompt
(generation and scoring); "repeat" = the anchors' way, every prompt and its media repeated G times.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from echoink.data import load_split, sample_messages  # noqa: E402
from echoink.model import Engine  # noqa: E402
from echoink.testing.tiny import make_tiny  # noqa: E402
from media_helpers import make_row, write_image, write_split, write_tone  # noqa: E402

MODES = ("shared", "repeat")


def av_prompts(engine, config, n_prompts: int, audio_seconds: float, image_side: int = 224):
    """(engine, PromptBatch of B audio+image prompts)."""
    root = Path(tempfile.mkdtemp(prefix="echoink-bench-"))
    rows = []
    for i in range(n_prompts):
        write_image(root / f"images/sample_{i}.png", size=(image_side, image_side), color=(40 * i, 90, 200))
        write_tone(root / f"audios/sample_{i}.wav", seconds=audio_seconds, freq=300 + 100 * i)
        rows.append(make_row(i))
    samples = load_split(write_split(root, rows)).samples
    return engine, engine.encode(sample_messages(samples, "reasoning", None, None, geometry=engine.geometry))


def video_prompts(engine, n_prompts: int, seconds: float = 4.0, fps: int = 2, side: int = 224):
    """(engine, PromptBatch of B video prompts: ``seconds`` at ``fps``, with a soundtrack interleaved)."""
    import json

    import numpy as np

    from echoink.data.messages import VideoSettings
    from echoink.data.video import write_video

    root = Path(tempfile.mkdtemp(prefix="echoink-bench-video-"))
    rows = []
    for i in range(n_prompts):
        frames = np.full((int(seconds * fps), side, side, 3), 40 * i, np.uint8)
        t = np.arange(int(seconds * 16_000)) / 16_000
        write_video(
            root / f"v{i}.mp4", frames, fps, (0.3 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype("float32")
        )
        rows.append({**make_row(i), "data_type": "video_audio", "path": {"video": f"v{i}.mp4"}})
    (root / "split.json").write_text(json.dumps(rows))
    samples = load_split(root / "split.json").samples
    video = VideoSettings(fps=fps, max_frames=int(seconds * fps), max_pixels=side * side)
    messages = sample_messages(samples, "reasoning", None, None, video=video, geometry=engine.geometry)
    return engine, engine.encode(messages)


def fixed_length_config(engine, model, new_tokens: int):
    """Sampling config that always produces exactly ``new_tokens`` tokens (stop ids blocked until then)."""
    return engine.generation_config(
        engine.vocab_size(model),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=True,
        temperature=1.0,
    )


def one_step(model, prompts, group_size: int, gen_config, mode: str, beta: float, seed: int = 0) -> dict:
    """Seconds per phase of one GRPO-shaped step: rollout, reference forward, policy forward+backward."""
    engine, batch = prompts
    sharing = "prefix" if mode == "shared" else "repeat"
    times = {}
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    done = engine.sample(model, batch, group_size, gen_config, shared=mode == "shared")
    ids, cmask = done.ids, done.mask
    times["rollout"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if beta > 0:
        with torch.no_grad():
            engine.logprobs(model, batch, ids, group_size, 1.0, sharing)
    times["reference"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    logp = engine.logprobs(model, batch, ids, group_size, 1.0, sharing)
    loss = -(logp * cmask).sum() / cmask.sum()
    loss.backward()
    model.zero_grad(set_to_none=True)
    times["policy_forward_backward"] = time.perf_counter() - t0
    times["step"] = sum(times.values())
    times["completion_tokens"] = int(cmask.sum())
    return times


def compare_modes(model, prompts, group_size, gen_config, beta, repeats, warmup=1) -> dict[str, dict]:
    """Median phase times per mode; modes alternate within each repeat so drifting load hits both."""
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(warmup + repeats):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            t = one_step(model, prompts, group_size, gen_config, mode, beta, seed=r)
            if r >= warmup:
                runs[mode].append(t)
    return {
        mode: {k: statistics.median(t[k] for t in ts) for k in ts[0]} | {"steps_s": [t["step"] for t in ts]}
        for mode, ts in runs.items()
    }


def tiny_model(hidden: int, layers: int, threads: int, family: str = "qwen2.5-omni"):
    """(tiny thinker of ``family`` in train mode, its engine)."""
    torch.set_num_threads(threads)
    model, processor = make_tiny(hidden=hidden, layers=layers, family=family)
    return model.train(), Engine(processor, family)


def add_step_args(parser, repeats: int = 5) -> None:
    """The arguments every audio+image bench shares (model size, step shape, threads)."""
    parser.add_argument("--prompts", type=int, default=2, help="B prompts per step")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--beta", type=float, default=0.04, help="> 0 adds the reference forward")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--family", default="qwen2.5-omni", choices=("qwen2.5-omni", "qwen3-omni"))
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier on a shared, busy CPU)"
    )


def step_info(args, prompts) -> dict:
    """The settings that go into every JSON line."""
    return {
        "B": args.prompts,
        "prompt_tokens": int(prompts[1].input_ids.shape[1]),
        "new_tokens": args.new_tokens,
        "beta": args.beta,
        "hidden": args.hidden,
        "layers": args.layers,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
    }
