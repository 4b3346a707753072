"""The shortcut experiment over several seeds, with an audio-swap split and paired tests (issue 37, item 2).

    python -m echoink_lab.shortcut_experiment --seeds 3 --arms paper,credit,placebo \
        --one-seed-arms grounded,filtered,conflict,sft_only --out runs/shortcut

Seed s runs the whole experiment (``shortcut_experiment.run_experiment``) into ``out/seed<s>`` with every
stage seeded from s (benchmark, tiny model, SFT, GRPO: ``demo.seed``, ``sft.seed``, ``train.seed``), then:

* **audio swap**: each held-out item with the audio of another item whose colour is in this item's scene
  (picture and frame unchanged); the split's answer is where the *heard* colour is, so a model's accuracy
  on it is how often its answer follows the audio (``audio_swap`` in the summary);
* **paired tests**: per part (broken, none, aligned, audio swap), McNemar (``eval.stats.mcnemar``: exact
  below 25 discordant pairs) of every arm against ``paper`` and against ``placebo`` on the same items.

``out/summary.json`` holds every number (per seed, and across seeds: mean, standard deviation, min, max);
``out/summary.md`` is generated from it alone.
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

SWAP = "test_swap.json"
SEEDS_SIZES = ("demo.test_items=300", "train.max_steps=40")
"""The seeds mode's sizes, before the caller's overrides (which win): 100 held-out items per part (a
whole number of answer-letter blocks) and 40 GRPO steps per arm, with the measured run's cold start (800
+ 300 SFT steps) kept, the only base measured to hold the shortcut. With ``SEEDS_ABLATE``, a 3-seed run of
paper, credit and placebo plus grounded, filtered, conflict and sft_only on seed 0 is an estimated 57
minutes alone on 2 cores (docs/grounding.md, "Sizing the 3-seed run")."""
SEEDS_ABLATE = ("audio",)
PAIRED_PARTS = ("broken", "none", "aligned", "audio_swap")
REFERENCES = ("paper", "placebo")


def audio_swap_split(test_path: Path, seed: int) -> Path:
    """Write ``test_swap.json`` beside ``test_path``: each item whose scene holds another item's heard
    colour gets that item's audio and, as its answer, the place of the heard colour (``swap_of``,
    ``original_solution`` kept). Items with no such donor are left out."""
    rows = json.loads(test_path.read_text())
    rng, out = random.Random(seed), []
    for row in rows:
        colours = [o["colour"] for o in row["scene"]]
        donors = [
            r for r in rows if r["cue"]["colour"] != row["cue"]["colour"] and r["cue"]["colour"] in colours
        ]
        if not donors:
            continue
        donor = rng.choice(donors)
        place = colours.index(donor["cue"]["colour"])
        swapped = {k: v for k, v in row.items() if k != "reasoning"}  # the trace would name the old colour
        swapped |= {
            "problem_id": f"{row['problem_id']}-swap", "path": {**row["path"], "audio": donor["path"]["audio"]},
            "solution": f"<answer>{'ABCD'[place]}</answer>", "original_solution": row["solution"],
            "swap_of": donor["problem_id"], "cue": donor["cue"],
        }  # fmt: skip
        out.append(swapped)
    path = test_path.with_name(SWAP)
    path.write_text(json.dumps(out, indent=1))
    return path


def _outcomes(eval_dir: Path, part: str | None) -> dict[str, bool]:
    """id -> correct (no ablation) from an evaluation's predictions.jsonl, on one shortcut part or all."""
    from echoink.eval.compare import item_outcomes
    from echoink.runlog import read_jsonl

    rows = [
        r for r in read_jsonl(eval_dir / "predictions.jsonl") if part is None or r.get("shortcut") == part
    ]
    return item_outcomes(rows)


def paired_tests(seed_dir: Path, arms: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{"<arm> vs <ref>": {part: {n, only_arm, only_ref, p}}} for every arm against paper and placebo."""
    from echoink.eval.compare import EXACT_BELOW, paired_table
    from echoink.eval.stats import mcnemar

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for ref in (r for r in REFERENCES if r in arms):
        for arm in (a for a in arms if a != ref and not (a == "paper" and ref == "placebo")):  # once a pair
            tests = {}
            for part in PAIRED_PARTS:
                swap = part == "audio_swap"
                where = (lambda a: seed_dir / f"swap_{a}") if swap else (lambda a: seed_dir / f"eval_{a}")
                t = paired_table(
                    _outcomes(where(arm), None if swap else part),
                    _outcomes(where(ref), None if swap else part),
                )
                b, c = t["only_a"], t["only_b"]
                tests[part] = {
                    "n": t["shared"],
                    "only_arm": b,
                    "only_ref": c,
                    "p": mcnemar(b, c, b + c < EXACT_BELOW),
                }
            out[f"{arm} vs {ref}"] = tests
    return out


def _spread(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": statistics.fmean(values),
        "sd": sd,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def across_seeds(per_seed: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {part or "audio_swap": mean/sd/min/max over seeds}} of the accuracies."""
    values: dict[str, dict[str, list[float]]] = {}
    for seed in per_seed.values():
        for model, block in seed["models"].items():
            for part, b in block["parts"].items():
                values.setdefault(model, {}).setdefault(part, []).append(b["accuracy"])
            swap = seed["audio_swap"][model]
            values[model].setdefault("audio_swap", []).append(swap["accuracy"])
            values[model].setdefault("swap_follows_original", []).append(
                swap.get("follows_original", float("nan"))
            )
            values[model].setdefault("audio_drop", []).append(block.get("audio_drop", float("nan")))
    return {m: {p: _spread(v) for p, v in parts.items()} for m, parts in values.items()}


def targets(per_seed: dict[str, dict[str, Any]], arm: str = "credit") -> dict[str, Any]:
    """Issue 37's targets for ``arm``, read off the per-seed numbers: the audio-swap gain over paper (mean,
    every seed the same sign, >= 15 points), broken items against placebo (McNemar p < 0.05 with the arm
    ahead in >= 2 of 3 seeds, or of most seeds), and the neutral accuracy lost to paper (<= 2 points)."""
    gains, lost, wins = [], [], 0
    for seed in per_seed.values():
        models, swap = seed["models"], seed["audio_swap"]
        if arm not in models or "paper" not in models:
            return {}
        gains.append(swap[arm]["accuracy"] - swap["paper"]["accuracy"])
        lost.append(models["paper"]["parts"]["none"]["accuracy"] - models[arm]["parts"]["none"]["accuracy"])
        test = seed["paired"].get(f"{arm} vs placebo", {}).get("broken")
        wins += bool(test and test["p"] < 0.05 and test["only_arm"] > test["only_ref"])
    same_sign = all(g > 0 for g in gains) or all(g < 0 for g in gains)
    need = 2 if len(gains) == 3 else len(gains) // 2 + 1
    out = {
        "swap_gain_vs_paper": {"mean": statistics.fmean(gains), "per_seed": gains, "same_sign": same_sign},
        "broken_beats_placebo_seeds": wins,
        "neutral_lost_to_paper": {"mean": statistics.fmean(lost), "per_seed": lost},
    }
    out["met"] = {
        "swap": out["swap_gain_vs_paper"]["mean"] >= 0.15 and same_sign,
        "placebo": wins >= need,
        "neutral": out["neutral_lost_to_paper"]["mean"] <= 0.02,
    }
    return out


def _swap_block(summary: dict[str, Any], eval_dir: Path) -> dict[str, Any]:
    """Accuracy on the swap split (follows the heard colour) and ``follows_original``: the share of
    answers that stay where the item's own audio (and, on aligned items, its frame) pointed."""
    from echoink.data.answers import parse_answer
    from echoink.runlog import read_jsonl

    rows = [r for r in read_jsonl(eval_dir / "predictions.jsonl") if r["condition"] == "none"]
    stay = sum(r["pred"] is not None and r["pred"] == parse_answer(r["original_solution"]) for r in rows)
    none = summary["conditions"]["none"]
    return {k: none[k] for k in ("accuracy", "ci95", "n")} | {"follows_original": stay / max(len(rows), 1)}


def run_seed(out: Path, seed: int, spec, echo, run) -> dict:
    """One seed's experiment into ``out``, its audio-swap evaluations and its paired tests.

    ``spec``: the experiment's ``ExperimentSpec``; ``run``: ``shortcut_experiment.run_experiment`` (passed
    in, so this module does not import it back)."""
    import shutil
    from dataclasses import replace

    from echoink.eval.evaluate import evaluate

    seeded = replace(
        spec, overrides=(*spec.overrides, f"demo.seed={seed}", f"sft.seed={seed}", f"train.seed={seed}")
    )
    summary = run(out, seeded, echo)
    kwargs = seeded.eval_settings(seeded.check(out)[0])
    swap = audio_swap_split(out / "bench" / "test.json", seed)
    summary["audio_swap"] = {}
    for model in ["base", *seeded.arms]:
        shutil.rmtree(out / f"swap_{model}", ignore_errors=True)
        done = evaluate(
            out / (seeded.base if model == "base" else model) / "final", swap, out / f"swap_{model}", **kwargs
        )
        summary["audio_swap"][model] = _swap_block(done, out / f"swap_{model}")
    summary["paired"] = paired_tests(out, list(seeded.arms))
    return summary


def run_seeds(
    out: Path, seeds: int, spec, run, echo=print, one_seed_arms: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Seeds 0 .. seeds-1 of the experiment ``spec`` (``out/seed<s>``), ``one_seed_arms`` added on seed 0
    only (controls too costly to repeat); writes and returns ``out/summary.json``. ``run``: see ``run_seed``."""
    from dataclasses import replace

    from echoink.outdir import check_output_dir

    check_output_dir(out, "--out", "shortcut experiment", own=("summary.json", "seed0"))
    spec = replace(spec, overrides=(*SEEDS_SIZES, *spec.overrides), ablate=SEEDS_ABLATE)
    extra = tuple(a for a in one_seed_arms if a not in spec.arms)
    per_seed = {
        str(s): run_seed(
            out / f"seed{s}", s, replace(spec, arms=(*spec.arms, *extra)) if s == 0 else spec, echo, run
        )
        for s in range(seeds)
    }
    arms = list(spec.arms)
    summary = {"seeds": seeds, "arms": arms, "one_seed_arms": list(extra), "sizes": list(spec.overrides),
               "per_seed": per_seed,
               "across_seeds": across_seeds(per_seed)}  # fmt: skip
    summary["targets"] = targets(per_seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(seeds_markdown(summary))
    echo("\n" + seeds_markdown(summary))
    return summary


def _cell(spread: dict[str, float] | None) -> str:
    if not spread:
        return "-"
    return f"{100 * spread['mean']:.1f} ± {100 * spread['sd']:.1f} [{100 * spread['min']:.1f}, {100 * spread['max']:.1f}]"


def seeds_markdown(s: dict[str, Any]) -> str:
    """``summary.md``: generated from ``summary.json``'s content alone (no other input)."""
    parts = ("broken", "none", "aligned", "audio_swap")
    columns = (*parts, "swap_follows_original", "audio_drop")
    lines = [
        "# Shortcut experiment over seeds (echoink_lab.shortcut_seeds)",
        "",
        f"{s['seeds']} seed(s); arms {', '.join(s['arms'])}"
        + (f"; on seed 0 only: {', '.join(s['one_seed_arms'])}" if s.get("one_seed_arms") else "")
        + (f"; sizes (before any --set): {', '.join(s['sizes'])}" if s.get("sizes") else "")
        + ". Accuracy in %: mean ± sd [min, max] over seeds. "
        "audio swap: the share of answers that follow the swapped-in audio.",
        "",
        "| model | broken | neutral (none) | aligned | audio swap: follows the new audio | audio swap: stays "
        "with the item's own | audio-ablation drop (pts) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, block in s["across_seeds"].items():
        lines.append(f"| {model} | " + " | ".join(_cell(block.get(p)) for p in columns) + " |")
    lines += ["", "Paired McNemar tests per seed (p; discordant items arm-only / reference-only):", ""]
    lines += ["| seed | comparison | " + " | ".join(parts) + " |", "|---|---|" + "---|" * len(parts)]
    for seed, block in s["per_seed"].items():
        for name, tests in block["paired"].items():
            cells = [f"{t['p']:.3g} ({t['only_arm']}/{t['only_ref']})" for t in (tests[p] for p in parts)]
            lines.append(f"| {seed} | {name} | " + " | ".join(cells) + " |")
    if t := s.get("targets"):
        g, n = t["swap_gain_vs_paper"], t["neutral_lost_to_paper"]
        lines += [
            "",
            "Targets (credit arm; issue 37): audio-swap gain over paper "
            f"{100 * g['mean']:+.1f} points (per seed {', '.join(f'{100 * x:+.1f}' for x in g['per_seed'])}; "
            f"{'same' if g['same_sign'] else 'mixed'} sign): {'met' if t['met']['swap'] else 'not met'}; "
            f"beats placebo on broken items (p < 0.05) in {t['broken_beats_placebo_seeds']} seed(s): "
            f"{'met' if t['met']['placebo'] else 'not met'}; neutral accuracy lost to paper {100 * n['mean']:.1f} "
            f"points: {'met' if t['met']['neutral'] else 'not met'}.",
        ]
    return "\n".join(lines) + "\n"
