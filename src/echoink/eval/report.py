"""One self-contained HTML page for a run directory or an eval folder (no network, media inline).

Shows the curves (analysis/curves.png, aha_rate.png), the evaluation summary and aha tables, and a
browsable list of rollouts / predictions: image, audio player, question and options, the completion
with <think>/<answer> rendered and aha phrases highlighted, rewards, correct/wrong. Filters by
correct/wrong, aha, ``needs``, source and condition. Media come from the split (``--data``, else
the eval's eval_config.json, else the run's config.yaml ``data.train_path``); each item's media are
embedded once (image as JPEG thumbnail, audio as Ogg Vorbis) however many completions show it.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..bounded import read_json_object, read_yaml
from ..data import SAMPLE_RATE, Sample, load_audio, load_image, load_split
from ..data.answers import parse_answer
from ..jsonl import read_jsonl
from .aha import Marker, detect
from .analysis import analyze, is_correct
from .report_charts import accuracy_series, bar_chart, drop_series
from .report_page import page, script_json
from .report_run import gather, header, header_html, read_summaries
from .summary import SUMMARY_COLUMNS, summary_rows

log = logging.getLogger(__name__)

_TAGS = re.compile(r"</?think>|</?answer>")


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_uri(path: Path, size: int = 320) -> str:
    image = load_image(path).convert("RGB")
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return _data_uri("image/jpeg", buf.getvalue())


def audio_uri(path: Path, max_seconds: float = 30.0) -> str:
    clip = load_audio(path, max_seconds)
    buf = io.BytesIO()
    sf.write(buf, np.asarray(clip.waveform, dtype=np.float32), SAMPLE_RATE, format="OGG", subtype="VORBIS")
    return _data_uri("audio/ogg", buf.getvalue())


def render_completion(text: str, markers: Sequence[Marker]) -> str:
    """HTML for a completion: tags as labels, think/answer text styled, aha markers in <mark>.

    Flat spans only (no nesting across tags), so unbalanced tags from a policy cannot break the page.

    >>> render_completion("<think>Wait, B</think><answer>B</answer>", [Marker(7, 11, "Wait")])
    '<span class="tag">&lt;think&gt;</span><span class="think"><mark>Wait</mark>, B</span><span class="tag">&lt;/think&gt;</span><span class="tag">&lt;answer&gt;</span><span class="answer">B</span><span class="tag">&lt;/answer&gt;</span>'
    """
    out, state, pos = [], "", 0
    cuts = [(m.start(), m.end(), m.group()) for m in _TAGS.finditer(text)] + [(len(text), len(text), "")]
    for start, end, tag in cuts:
        if start > pos:
            out.append(f'<span class="{state or "plain"}">{_marked(text, pos, start, markers)}</span>')
        if tag:
            out.append(f'<span class="tag">{html.escape(tag)}</span>')
            state = "" if tag.startswith("</") else tag.strip("<>")
        pos = end
    return "".join(out)


def _marked(text: str, start: int, end: int, markers: Sequence[Marker]) -> str:
    parts, pos = [], start
    for m in markers:
        a, b = max(m.start, pos), min(m.end, end)
        if a < b:
            parts += [html.escape(text[pos:a]), f"<mark>{html.escape(text[a:b])}</mark>"]
            pos = b
    parts.append(html.escape(text[pos:end]))
    return "".join(parts)


def _split_of(folder: Path | None, data: str | Path | None) -> Path | None:
    """The split whose media a folder's rows show: ``--data``, else an eval's split, else a run's training split."""
    if data is not None:
        return Path(data)
    if folder is None:
        return None
    if (folder / "eval_config.json").exists():
        return Path(str(read_json_object(folder / "eval_config.json", "an eval_config.json").get("data")))
    if (folder / "config.yaml").exists():
        cfg = read_yaml(folder / "config.yaml") or {}  # nesting bounded, as every file the CLI reads
        data = cfg.get("data") if isinstance(cfg, dict) else None
        path = data.get("train_path") if isinstance(data, dict) else None
        return Path(path) if path else None
    return None


def _rows(training: Path | None, evals: dict[str, Path], max_items: int) -> list[dict[str, Any]]:
    """Rollouts (latest steps first) then each eval's predictions, tagged with their source and split;
    at most ``max_items``, shared fairly between the sources."""
    sources: list[list[dict[str, Any]]] = []
    if training is not None and (training / "rollouts.jsonl").exists():
        rollouts = sorted(read_jsonl(training / "rollouts.jsonl"), key=lambda r: -r.get("step", 0))
        sources.append([{**r, "_source": "rollouts", "_folder": training} for r in rollouts])
    for label, folder in evals.items():
        if (folder / "predictions.jsonl").exists():
            rows = read_jsonl(folder / "predictions.jsonl")
            source = "predictions" if len(evals) == 1 else f"eval {label}"
            sources.append([{**r, "_source": source, "_folder": folder} for r in rows])
    share = max(1, max_items // max(1, len(sources)))
    return [r for rows in sources for r in rows[:share]][:max_items]


def _samples(rows: list[dict[str, Any]], data: str | Path | None, fallback: Path | None) -> dict[str, Sample]:
    """Each row's sample by ``row["_key"]`` (split number / id: ids repeat across splits); sets ``_key``."""
    splits: dict[Path, dict[str, Sample]] = {}
    order: dict[Path, int] = {}
    for r in rows:
        path = _split_of(r.pop("_folder"), data) or fallback
        if path is not None and path not in splits:
            loaded = load_split(path, on_error="skip").samples if path.exists() else []
            splits[path], order[path] = {x.id: x for x in loaded}, len(order)
        r["_key"] = f"{order.get(path, 0)}/{r.get('id')}"
        sample = splits.get(path, {}).get(str(r.get("id")))
        if sample is not None:
            r["_sample"] = sample
    return {r["_key"]: r.pop("_sample") for r in rows if "_sample" in r}


def _media(samples: dict[str, Sample]) -> dict[str, dict[str, str]]:
    media: dict[str, dict[str, str]] = {}
    for key, s in samples.items():
        entry = {}
        try:
            if s.image:
                entry["image"] = image_uri(s.image)
            if s.audio:
                entry["audio"] = audio_uri(s.audio)
        except (OSError, ValueError) as err:  # one unreadable file must not sink the report
            log.warning("report: media of %s: %s", s.id, err)
        media[key] = entry
    return media


def _card(row: dict[str, Any], sample: Sample | None, has_media: dict[str, str]) -> str:
    aha = detect(row["completion"])
    ok = is_correct(row)
    attrs = {
        "correct": {True: "1", False: "0", None: "?"}[ok],
        "aha": "1" if aha.found else "0",
        "needs": str(row.get("needs", "?")),
        "source": row["_source"],
        "condition": str(row.get("condition", "none")),
    }
    data = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in attrs.items())
    where = f"step {row['step']}" if "step" in row else f"condition {attrs['condition']}"
    verdict = _verdict(row, sample)
    badge = {"1": '<b class="ok">correct</b>', "0": '<b class="bad">wrong</b>', "?": ""}[attrs["correct"]]
    facts = {
        k: v
        for k, v in row.items()
        if k.startswith("rewards/")
        or k in ("reward", "advantage", "pred", "answer", "format_ok", "length", "truncated")
    }
    fact_html = " ".join(f"<code>{html.escape(k)}={html.escape(_short(v))}</code>" for k, v in facts.items())
    if aha.switch:
        fact_html += f" <code>switch {aha.switch[0]}&rarr;{aha.switch[1]}</code>"
    sid, media = html.escape(str(row.get("id"))), _media_html(row, has_media)
    question = "<i>question not found: pass --data SPLIT</i>"
    if sample is not None:
        options = "".join(f"<li>{html.escape(o)}</li>" for o in sample.options)
        question = f"<p>{html.escape(sample.question)}</p><ul>{options}</ul>"
    return (
        f'<div class="card" {data}><div class="head">{html.escape(row["_source"])} · id {sid} · {where} '
        f"{badge}{' <b class=aha>aha</b>' if aha.found else ''} {verdict}</div><div class='body'><div class='media'>"
        f"{media}</div><div class='text'>{question}<pre class='completion'>"
        f"{render_completion(row['completion'], aha.markers)}</pre><div>{fact_html}</div></div></div></div>"
    )


def _verdict(row: dict[str, Any], sample: Sample | None) -> str:
    """The parsed prediction (the eval's, else the strict parser's on the completion) beside the gold."""
    pred = row["pred"] if "pred" in row else parse_answer(row["completion"])
    gold = row.get("answer") or (sample.answer if sample is not None else None)
    pred_text, gold_text = html.escape(str(pred or "unparsed")), html.escape(str(gold or "?"))
    return f'<span class="pred">prediction <b>{pred_text}</b> · gold <b>{gold_text}</b></span>'


def _media_html(row: dict[str, Any], has_media: dict[str, str]) -> str:
    sid, key = html.escape(str(row.get("id"))), html.escape(row.get("_key", str(row.get("id"))))
    media = ""
    if "image" in has_media:
        media += f'<img data-media="{key}" alt="image of {sid}">'
    if "audio" in has_media:
        media += f'<audio controls preload="metadata" data-media="{key}"></audio>'
    return media


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _summary_html(summary: dict[str, Any], label: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in SUMMARY_COLUMNS) + "</tr>"
    body = []
    for kind, cells in summary_rows(summary):
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        if kind == "extra":
            tds = f"<td></td><td colspan={len(SUMMARY_COLUMNS) - 1}>{html.escape(cells[0])}</td>"
        body.append(f"<tr class='{kind}'>{tds}</tr>")
    model, data = html.escape(str(summary.get("model"))), html.escape(str(summary.get("data")))
    title = f"Evaluation: {html.escape(label)}" if label else "Evaluation"
    return f"<h2>{title}</h2><p>{model} on {data}</p><table>{head}{''.join(body)}</table>"


def _aha_html(aha: dict[str, Any]) -> str:
    rows = []
    for source, s in aha.items():
        cells = [s["n"], s["rate"], s["rate_correct"], s["rate_wrong"], s["with_switch"]]
        rows.append(
            "<tr><td>"
            + html.escape(source)
            + "</td>"
            + "".join(f"<td>{_short(c) if c is not None else '-'}</td>" for c in cells)
            + "</tr>"
        )
    head = "<tr><th>source</th><th>n</th><th>aha rate</th><th>among correct</th><th>among wrong</th><th>answer switches</th></tr>"
    return f"<h2>Aha moments</h2><table>{head}{''.join(rows)}</table>"


def _filters(rows: Sequence[dict[str, Any]]) -> str:
    groups = {
        "correct": [("1", "correct"), ("0", "wrong")],
        "aha": [("1", "aha"), ("0", "no aha")],
        "needs": [(v, v) for v in sorted({str(r.get("needs", "?")) for r in rows})],
        "source": [(v, v) for v in sorted({r["_source"] for r in rows})],
        "condition": [(v, v) for v in sorted({str(r.get("condition", "none")) for r in rows})],
    }
    html_groups = []
    for name, values in groups.items():
        buttons = [f'<button class="on" data-filter="{name}" data-value="all">all</button>']
        buttons += [
            f'<button data-filter="{name}" data-value="{html.escape(v)}">{html.escape(label)}</button>'
            for v, label in values
        ]
        html_groups.append(f'<span class="group"><span class="label">{name}:</span>{"".join(buttons)}</span>')
    return "".join(html_groups)


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    data: str | Path | None = None,
    max_items: int = 300,
    evals: Sequence[str | Path] = (),
) -> Path:
    """Write the report page (default RUN_DIR/report.html) and return its path: header, charts, curves,
    tables and cards of the run's training folder and evals (inside RUN_DIR, and ``evals``)."""
    run = Path(run_dir)
    if (run / "summary.json").is_file():  # a damaged one is refused before anything is written
        read_json_object(run / "summary.json", "an echoink summary.json")
    training, found = gather(run, evals)
    summaries = read_summaries(found)
    source = training or (next(iter(found.values())) if len(found) == 1 else run)
    result = analyze(source)  # curves and aha stats, written to SOURCE/analysis
    rows = _rows(training, found, max_items)
    fallback = next((_split_of(f, None) for f in found.values()), None)
    samples = _samples(rows, data, fallback)
    if rows and not samples:
        log.warning("report: no split found for %s (pass --data); showing text only", run)
    media = _media(samples)
    sections = [header_html(header(training, summaries)), *_charts(summaries)]
    for name in ("curves.png", "aha_rate.png"):
        path = source / "analysis" / name
        if path.exists():
            sections.append(
                f'<img class="plot" alt="{name}" src="{_data_uri("image/png", path.read_bytes())}">'
            )
    sections += [_summary_html(s, label if len(summaries) > 1 else "") for label, s in summaries.items()]
    if result["aha"]:
        sections.append(_aha_html(result["aha"]))
    cards = "".join(_card(r, samples.get(r["_key"]), media.get(r["_key"], {})) for r in rows)
    text = page(
        title=html.escape(f"echoink report: {run.resolve().name}"),
        sections="".join(sections),
        filters=_filters(rows),
        total=len(rows),
        cards=cards,
        media=script_json(media),
    )
    target = Path(out) if out is not None else run / "report.html"
    target.write_text(text, encoding="utf-8")
    return target


def _charts(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Accuracy with its 95% CI per model and condition; the drop each ablation causes."""
    if not summaries:
        return []
    charts = [bar_chart("Strict accuracy with 95% CI, by model and condition", *accuracy_series(summaries))]
    groups, drops = drop_series(summaries)
    if groups and any(v for vals in drops.values() for v in vals):
        charts.append(bar_chart("Accuracy lost with each input removed (points)", groups, drops, signed=True))
    return ["<h2>Charts</h2>", *charts]
