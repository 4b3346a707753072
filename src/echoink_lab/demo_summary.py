"""The demo's summary: each model's accuracy by condition, the paired verdicts, and summary.md."""

from __future__ import annotations

from typing import Any

from echoink.config import Config

from .recipe import DemoConfig

ABLATIONS = {"image": ("audio", "image"), "video": ("audio", "video", "desync")}
"""What each modality's demo removes (besides nothing)."""
REMOVED = {"audio": "audio_removed", "image": "image_removed", "video": "video_removed", "desync": "desynced"}
LABELS = {
    "audio": "audio -> silence",
    "image": "image -> blank",
    "video": "video -> blank frames",
    "desync": "soundtrack shifted by half the clip",
}
TITLES = {"qwen2.5-omni": "Qwen2.5-Omni", "qwen3-omni": "Qwen3-Omni (MoE)"}


def _both(summary: dict, condition: str) -> float | None:
    block = summary["conditions"].get(condition, {})
    return block.get("by", {}).get("needs", {}).get("both", {}).get("accuracy")


def model_block(summary: dict, modality: str = "image") -> dict[str, Any]:
    none = summary["conditions"]["none"]
    both = _both(summary, "none")
    return {
        "accuracy": none["accuracy"],
        "ci95": none["ci95"],
        "n": none["n"],
        "format_rate": none["format_rate"],
        "unparseable_rate": none["unparseable_rate"],
        "mean_length": none["mean_length"],
        "by_needs": {k: v["accuracy"] for k, v in none["by"].get("needs", {}).items()},
        "both_items": {"full": both} | {REMOVED[c]: _both(summary, c) for c in ABLATIONS[modality]},
    }


def build_summary(
    base: dict, tuned: dict, seconds: dict[str, float], cfg: Config, d: DemoConfig
) -> dict[str, Any]:
    b, g = model_block(base, d.modality), model_block(tuned, d.modality)
    return {
        "what": f"tiny {TITLES[d.family]} thinker, SFT cold start then GRPO (accuracy + format rewards, weights 1, 1)",
        "test_items": b["n"],
        "modality": d.modality,
        "families": ["tone_when"] if d.modality == "video" else list(d.families) or ["all"],
        "difficulty": d.difficulty,
        "decoding": cfg.eval.decoding,
        "prompt": cfg.eval.template,
        "base": b,
        "grpo": g,
        "gain_points": 100 * (g["accuracy"] - b["accuracy"]),
        "seconds": seconds,
        "grpo_steps": cfg.train.max_steps,
        "group_size": cfg.rollout.num_generations,
        "sft_steps": cfg.sft.max_steps,
        "glance_stage_steps": d.glance_stage_steps,
        "glance_traces": d.glance_traces if d.glance_stage_steps else 0.0,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _honest_lines(s: dict[str, Any]) -> list[str]:
    """The sentences whose words follow from the numbers (``demo_honest``): per GRPO seed the paired test
    against the base, the base's pass@k beside GRPO's, the desync diagnostic, the glance stage's wrong
    targets. A summary from before these fields gets none of them."""
    from .demo_honest import reselection_words

    lines = []
    for r in s.get("grpo_seeds", []):
        lines.append(f"- GRPO seed {r['seed']}: {_pct(r['accuracy'])} [{_pct(r['ci95'][0])}, "
                     f"{_pct(r['ci95'][1])}], {r['gain_points']:+.1f} points over the base: {r['words']}.")  # fmt: skip
    if s.get("grpo_seeds"):
        k = s.get("base_pass_at_k")
        if k:
            lines.append("- Base sampled at T = 1: " + ", ".join(f"pass@{j} {_pct(v)}" for j, v in k.items())
                         + "; GRPO's pass@1 is its greedy accuracy.")  # fmt: skip
        mean = sum(r["accuracy"] for r in s["grpo_seeds"]) / len(s["grpo_seeds"])
        lines.append("- " + reselection_words(k, mean, s["base"]["accuracy"]) + " (GRPO: mean over seeds)")
    for model, dg in (s.get("desync") or {}).items():
        if dg:
            lines.append(f"- Soundtrack shifted by half the clip, {model}: {_pct(dg['shifted_colour_share'])} of "
                         f"answers name the colour on screen where the shifted tone lands (a model that reads the "
                         f"sound's moment), {_pct(dg['gold_share'])} the gold colour, {_pct(dg['unparseable_rate'])} "
                         f"unparseable (n = {dg['n']}).")  # fmt: skip
    if g := s.get("glance_targets"):
        lines.append(f"- The glance stage trains on {g['glance']} glance traces of {g['items']} clips; {g['wrong']} of "
                     f"them end in a wrong letter: {_pct(g['wrong_share'])} of that stage's targets are wrong.")  # fmt: skip
    return lines


def _cold_start(s: dict[str, Any]) -> str:
    text = f"Cold start: {s.get('sft_steps', '?')} SFT steps on the reference traces"
    if s.get("glance_stage_steps"):
        text += (
            f", then {s['glance_stage_steps']} on the same clips with {100 * s['glance_traces']:.0f}% of the "
            "traces a one-frame glance (a shortcut, right on a quarter of the clips)"
        )
    return text + "."


def summary_markdown(s: dict[str, Any]) -> str:
    b, g = s["base"], s["grpo"]
    rows = [
        (
            "accuracy (95% CI)",
            *(f"{_pct(m['accuracy'])} [{_pct(m['ci95'][0])}, {_pct(m['ci95'][1])}]" for m in (b, g)),
        ),
        ("format rate", _pct(b["format_rate"]), _pct(g["format_rate"])),
        ("unparseable", _pct(b["unparseable_rate"]), _pct(g["unparseable_rate"])),
        *[
            (f"accuracy, needs {k}", _pct(b["by_needs"].get(k)), _pct(g["by_needs"].get(k)))
            for k in sorted(g["by_needs"])
        ],
        ("'both' items, full input", _pct(b["both_items"]["full"]), _pct(g["both_items"]["full"])),
        *[
            (
                f"'both' items, {LABELS[c]}",
                _pct(b["both_items"][REMOVED[c]]),
                _pct(g["both_items"][REMOVED[c]]),
            )
            for c in ABLATIONS[s.get("modality", "image")]
        ],
        ("mean completion tokens", f"{b['mean_length']:.1f}", f"{g['mean_length']:.1f}"),
    ]
    lines = [
        f"# echoink demo: {s['what']}",
        "",
        f"Held-out test split: {s['test_items']} items ({', '.join(s['families'])}; {s['difficulty']}), "
        f"{s['decoding']} decoding, '{s['prompt']}' prompt for both models.",
        "",
        "| | SFT base | after GRPO |",
        "|---|---|---|",
        *[f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows],
        "",
        _cold_start(s),
        "",
        f"GRPO gain (first seed): {s['gain_points']:+.1f} points ({s['grpo_steps']} steps, G = {s['group_size']}). "
        "GRPO's only signal is the accuracy and format rewards (no reference traces).",
        "",
        *_honest_lines(s),
        "",
        "Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds"].items()),
    ]
    return "\n".join(lines) + "\n"
