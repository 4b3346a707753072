"""Step time with and without the modality-credit pass (issue 37): the trainer's own step, tiny thinker.

Writes a small ``shortcut_where`` benchmark (224x56 image + a tone per item) and a tiny thinker into
``--out`` (a temporary directory by default), optionally an SFT cold start (``--sft-steps``, so the
completions have ``<think>`` traces), then runs ``echoink``'s GRPO trainer twice from the same model and
seed: ``off`` (the paper's rewards) and ``on`` (+ the ``modality_credit`` reward and the ``scale``
advantage weighting, i.e. one extra encode of the prompts with the audio silenced and two no-grad
shared-prefix log-prob passes). Step times are read from each run's metrics.jsonl (the first step, a
warm-up, left out when there are more).

    OMP_NUM_THREADS=1 nice python bench/credit_cost.py --group-size 8 --steps 4

Prints one JSON line per arm, then one with the ratio and the credit pass's share of the step.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from pathlib import Path

from echoink.config import load_config
from echoink.rl.trainer import train
from echoink.runlog import read_jsonl
from echoink.sft import sft, target_ids
from echoink.testing.tiny import build_tiny
from echoink_lab.synth import SynthSpec, benchmark_corpus, generate

ARMS = {
    "off": ["algo.rewards={accuracy: 1.0, format: 1.0}"],
    "on": ["algo.rewards={accuracy: 1.0, format: 1.0, modality_credit: 0.4}", "algo.credit_weighting=scale"],
}
CREDIT_STATS = (
    "credit/think",
    "credit/answer",
    "credit/completion",
    "credit/think_tokens",
    "credit/answer_tokens",
)


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else float("nan")


def _base(out: Path, a) -> list[str]:
    """The common overrides; with ``--sft-steps``, the SFT cold start first (its final/ is the model)."""
    common = [
        f"data.train_path={out / 'bench' / 'train.json'}", f"model.path={out / 'model'}",
        f"sft.output_dir={out / 'sft'}", "data.max_pixels=50176", "model.dtype=float32",
        f"train.threads={a.threads}",
    ]  # fmt: skip
    if a.sft_steps:
        sft_over = [f"sft.max_steps={a.sft_steps}", "sft.batch_size=16", "sft.lr=5e-4", "sft.warmup_steps=20"]
        sft(load_config(None, common + sft_over))
        common.append(f"model.path={out / 'sft' / 'final'}")
    return common + [
        f"train.max_steps={a.steps}", f"train.prompts_per_step={a.prompts}", f"rollout.num_generations={a.group_size}",
        f"rollout.max_new_tokens={a.new_tokens}", "train.save_every=1000", "train.lr=1e-5",
    ]  # fmt: skip


def gold_trace_credit(cfg, n: int) -> dict:
    """The credit stats of the first ``n`` training items' reference traces (teacher-forced, so every
    completion has a ``<think>`` span and an answer), and the first trace's credit token by token."""
    import torch

    from echoink.data import load_split
    from echoink.model.loading import load_engine, load_policy
    from echoink.rl.credit_pass import span_stats, token_pieces
    from echoink.rl.rollout import encode_samples, prompt_spec

    engine, policy = load_engine(cfg.model.path), load_policy(cfg.model)
    samples = load_split(cfg.data.train_path).samples[:n]
    ids, mask = target_ids(engine, samples, cfg.sft.trace_field)  # [n, T], G = 1, as SFT trains on them
    spec = prompt_spec(cfg.data, engine.geometry)
    full = encode_samples(engine, samples, spec, "cpu")
    silent = encode_samples(engine, samples, spec, "cpu", ablate=cfg.algo.counterfactual_ablate)
    with torch.no_grad():
        logp_full, logp_removed = (engine.logprobs(policy, p, ids, 1) for p in (full, silent))  # [n, T] each
    pieces = token_pieces(engine, ids)
    stats = span_stats(logp_full, logp_removed, pieces, mask, torch.ones(n, dtype=torch.bool))
    diff = (logp_full - logp_removed)[0]
    first = [[p, round(float(d), 3)] for p, d, m in zip(pieces[0], diff, mask[0], strict=True) if m]
    return {k: float(f"{v:.4g}") for k, v in stats.items()} | {"first_trace_tokens": first}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--sft-steps", type=int, default=0, help="an SFT cold start first (0: the random thinker)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--items", type=int, default=64, help="training items (more: an SFT that cannot memorise)")
    p.add_argument("--gold", type=int, default=0, help="also: the credit of N items' reference traces")
    p.add_argument(
        "--model", type=Path, default=None, help="start from this thinker (default: a new tiny one)"
    )
    p.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="credit_cost_"))
    spec = SynthSpec(0, "easy", families=("shortcut_where",), shortcut=0.8)
    generate(out / "bench", {"train": max(a.items, a.prompts * a.steps)}, spec, workers=1)
    if a.model is None:
        build_tiny(out / "model", a.hidden, a.layers, 1024, 0, benchmark_corpus(), 10.0)
    else:
        shutil.copytree(a.model, out / "model", dirs_exist_ok=True)
    common = _base(out, a)
    res = {}
    for arm, extra in ARMS.items():
        rows = read_jsonl(
            train(load_config(None, [*common, f"train.output_dir={out / arm}", *extra])) / "metrics.jsonl"
        )
        timed = rows[1:] if len(rows) > 1 else rows
        res[arm] = {"step_s": _mean(timed, "step_time"), "credit_s": _mean(timed, "time/credit")}
        res[arm] |= {f"{k}_s": _mean(timed, f"time/{k}") for k in ("rollout", "policy_forward_backward")}
        res[arm] |= {k: _mean(rows, k) for k in CREDIT_STATS if arm == "on"}
    info = {"bench": "credit_cost", "G": a.group_size, "prompts": a.prompts, "steps": a.steps}
    info |= {"new_tokens": a.new_tokens, "hidden": a.hidden, "layers": a.layers, "sft_steps": a.sft_steps}
    info |= {"threads": a.threads, "machine": platform.machine()}
    for arm, r in res.items():
        print(
            json.dumps(info | {"arm": arm} | {k: None if v != v else float(f"{v:.4g}") for k, v in r.items()})
        )
    if a.gold:
        stats = gold_trace_credit(load_config(None, [*common, f"train.output_dir={out / 'gold'}"]), a.gold)
        print(json.dumps(info | {"arm": "gold_traces", "items": a.gold} | stats))
    on, off = res["on"], res["off"]
    ratio = {"step_on_over_off": round(on["step_s"] / off["step_s"], 3)}
    ratio["credit_share_of_step"] = round(on["credit_s"] / on["step_s"], 3)
    print(json.dumps(info | {"arm": "ratio"} | ratio))


if __name__ == "__main__":
    main()
