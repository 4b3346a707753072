"""The shortcut experiment's summary: per-model blocks by shortcut part, the passes' cost, and summary.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PARTS = ("broken", "none", "aligned")


def model_block(summary: dict[str, Any]) -> dict[str, Any]:
    """Accuracy [CI] and n per shortcut part, and each ablation's drop (all items and per part)."""
    conds = summary["conditions"]
    by = conds["none"]["by"].get("shortcut", {})
    block: dict[str, Any] = {
        "accuracy": conds["none"]["accuracy"],
        "parts": {p: {k: by[p][k] for k in ("accuracy", "ci95", "n")} for p in PARTS if p in by},
    }
    for ablated in ("audio", "image"):
        if ablated in conds:
            block[f"{ablated}_drop"] = conds[ablated]["drop"]
            block[f"{ablated}_drop_by"] = conds[ablated]["drop_by"].get("shortcut", {})
    if "audio" in conds:  # each part with the audio silenced: what is left is the picture (and the frame)
        silent = conds["audio"]["by"].get("shortcut", {})
        block["parts_audio_silenced"] = {
            p: {k: silent[p][k] for k in ("accuracy", "ci95", "n")} for p in PARTS if p in silent
        }
    return block


def step_cost(metrics_path: Path) -> dict[str, float]:
    """Mean step time and the counterfactual (or credit) pass's share of it, from a run's metrics.jsonl."""
    from echoink.runlog import read_jsonl

    rows = read_jsonl(metrics_path)
    step = sum(r["step_time"] for r in rows) / max(len(rows), 1)
    cf = sum(r.get("time/counterfactual", 0.0) + r.get("time/credit", 0.0) for r in rows) / max(len(rows), 1)
    return {"step_s": step, "counterfactual_s": cf, "counterfactual_fraction": cf / step if step else 0.0}


def _pct(block: dict | None) -> str:
    if not block:
        return "-"
    lo, hi = block["ci95"]
    return f"{100 * block['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={block['n']})"


def _silenced_and_arm_lines(s: dict[str, Any], header: str) -> list[str]:
    """Each part's accuracy with the audio silenced, and what the conflict and sft_only arms were."""
    lines: list[str] = []
    lines += ["", "With the audio silenced (the picture and the frame only):", "", header.split(" | audio")[0] + " |",
              "|---|---|---|---|"]  # fmt: skip
    for name, m in s["models"].items():
        silent = m.get("parts_audio_silenced", {})
        lines.append(f"| {name} | " + " | ".join(_pct(silent.get(p)) for p in PARTS) + " |")
    if s.get("sft_only"):
        lines += ["", f"sft_only: {s['sft_only']}."]
    if s.get("conflict_frames") is not None:
        lines += [
            "",
            f"conflict: {100 * s['conflict_frames']:.0f}% of the RL training items framed on a wrong object.",
        ]
    return lines


def summary_markdown(s: dict[str, Any]) -> str:
    header = "| model | broken | neutral (none) | aligned | audio-ablation drop | image-ablation drop |"
    lines = [
        "# Visual shortcut vs grounding (echoink_lab.shortcut_experiment)",
        "",
        f"Train: {100 * s['aligned_fraction']:.0f}% of items framed on the answer, "
        f"{100 * s.get('frame_traces', 0.0):.0f}% of those with a cold-start trace that reads the frame"
        + (
            f" (in a second SFT stage of {s['frame_stage_steps']} steps)"
            if s.get("frame_stage_steps")
            else ""
        )
        + f"; grounding weight {s.get('grounding_weight', 1.0):g}. "
        "Held-out test: broken / "
        f"neutral / aligned thirds. GRPO {s['grpo_steps']} steps, G = {s['group_size']}, "
        f"M = {s['counterfactual_samples']} counterfactual answers per prompt; greedy decoding; 95% Wilson CIs.",
        "",
        header,
        "|---|---|---|---|---|---|",
    ]
    for name, m in s["models"].items():
        parts = [_pct(m["parts"].get(p)) for p in PARTS]
        drops = [f"{100 * m[k]:+.1f} pts" if k in m else "-" for k in ("audio_drop", "image_drop")]
        lines.append(f"| {name} | " + " | ".join(parts + drops) + " |")
    lines += _silenced_and_arm_lines(s, header)
    lines += ["", "Step cost (mean over the run): "]
    for arm, c in s["step_cost"].items():
        lines.append(
            f"- {arm}: {c['step_s']:.2f} s/step, counterfactual pass {c['counterfactual_s']:.2f} s "
            f"({100 * c['counterfactual_fraction']:.0f}% of the step)"
        )
    lines += ["", "Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds"].items())]
    return "\n".join(lines) + "\n"
