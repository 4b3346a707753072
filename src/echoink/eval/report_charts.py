"""The report's charts as inline SVG (no script, no network): accuracy with its 95% CI per model and
condition, and the accuracy each ablation removes. Each bar is a ``<rect class="bar">`` with its value
in a ``<title>``, so a browser (and the test) can check that it drew something."""

from __future__ import annotations

import html
import math
from typing import Any

COLOURS = ("#3366aa", "#dd7733", "#339955", "#aa3377", "#777777", "#bbaa22")
W, H, LEFT, BOTTOM, TOP = 640, 260, 48, 40, 16


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def accuracy_series(evals: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, list[tuple]]]:
    """(conditions, {model: [(accuracy, lo, hi) or None per condition]}) from each eval's summary."""
    conditions = list(dict.fromkeys(c for s in evals.values() for c in s.get("conditions", {})))
    series = {}
    for label, summary in evals.items():
        blocks = summary.get("conditions", {})
        series[label] = [
            (b["accuracy"], *b.get("ci95", (None, None)))
            if _finite((b := blocks.get(c, {})).get("accuracy"))
            else None
            for c in conditions
        ]
    return conditions, series


def drop_series(evals: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, list[tuple]]]:
    """(ablations, {model: [(drop,) or None per ablation]}): points of accuracy lost without each input."""
    conditions = [
        c for c in dict.fromkeys(c for s in evals.values() for c in s.get("conditions", {})) if c != "none"
    ]
    series = {
        label: [
            (d,) if _finite(d := s.get("conditions", {}).get(c, {}).get("drop")) else None for c in conditions
        ]
        for label, s in evals.items()
    }
    return conditions, series


def bar_chart(
    title: str, groups: list[str], series: dict[str, list[tuple | None]], signed: bool = False
) -> str:
    """Grouped bars (one group per condition, one bar per model); whiskers where a CI is given.
    Values are fractions, drawn in percent; ``signed``: the axis spans -100..100 around zero."""
    if not groups or not series:
        return ""
    lo_v, hi_v = (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        peak = max([abs(v[0]) for vals in series.values() for v in vals if v] + [0.05])
        lo_v, hi_v = -min(1.0, peak * 1.15), min(1.0, peak * 1.15)
    plot_h = H - BOTTOM - TOP

    def y(v: float) -> float:
        return TOP + plot_h * (hi_v - v) / (hi_v - lo_v)

    slot = (W - LEFT - 10) / len(groups)
    width = slot * 0.8 / len(series)
    parts = [_axes(y, lo_v, hi_v)]
    for g, group in enumerate(groups):
        x0 = LEFT + g * slot + slot * 0.1
        parts.append(
            f'<text x="{x0 + slot * 0.4:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{html.escape(group)}</text>'
        )
        for m, (label, values) in enumerate(series.items()):
            if values[g] is not None:
                parts.append(
                    _bar(x0 + m * width, width, values[g], y, COLOURS[m % len(COLOURS)], label, group)
                )
    legend = "".join(
        f'<tspan fill="{COLOURS[m % len(COLOURS)]}">&#9632; {html.escape(label)}</tspan> '
        for m, label in enumerate(series)
    )
    parts.append(f'<text x="{LEFT}" y="{H - 6}">{legend}</text>')
    return (
        f'<figure><figcaption>{html.escape(title)}</figcaption><svg class="chart" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg></figure>'
    )


def _axes(y, lo_v: float, hi_v: float) -> str:
    step = 25 if hi_v > 0.5 else 10 if hi_v > 0.2 else 2  # percent between grid lines
    ticks = [t / 100 for t in range(-100, 101, step) if lo_v - 1e-9 <= t / 100 <= hi_v + 1e-9]
    out = [f'<line x1="{LEFT}" x2="{W - 10}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#444"/>']
    for t in ticks:
        out.append(f'<line x1="{LEFT - 4}" x2="{W - 10}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{100 * t:.0f}%</text>')
    return "".join(out)


def _bar(x: float, width: float, value: tuple, y, colour: str, label: str, group: str) -> str:
    v = value[0]
    top, bottom = sorted((y(v), y(0)))
    height = max(bottom - top, 1.0)  # a zero still shows as a line
    tip = f"{label}, {group}: {100 * v:.1f}%"
    out = (
        f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{width * 0.92:.1f}" height="{height:.1f}" '
        f'fill="{colour}"><title>{html.escape(tip)}</title></rect>'
    )
    if len(value) == 3 and _finite(value[1]) and _finite(value[2]):
        cx = x + width * 0.46
        out += (
            f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(value[1]):.1f}" y2="{y(value[2]):.1f}" '
            'stroke="#111" stroke-width="1.5"/>'
        )
    return out
