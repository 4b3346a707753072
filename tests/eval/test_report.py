"""build_report(): a self-contained page, checked as text and in a real headless Chromium."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from echoink.cli import app
from echoink.eval.evaluate import evaluate
from echoink.eval.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AHA = "<think>The answer is A. Wait, listen again: it is <b>B</b>.</think><answer>B</answer>"
PLAIN = "<think>The tone rises, so A.</think><answer>A</answer>"
# An <audio> element's duration once its metadata loads (-1 if it does not decode).
AUDIO_DURATION = """a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener("loadedmetadata", () => done(a.duration));
    a.addEventListener("error", () => done(-1));
    a.load();
})"""


@pytest.fixture
def run_dir(scripted, eval_split: Path, tmp_path: Path) -> Path:
    """An eval (predictions, summary, eval_config.json naming the split) plus training logs in one folder."""
    run = tmp_path / "run"
    scripted.script = {0: [PLAIN], 1: [AHA], 2: [PLAIN], 3: [PLAIN]}
    evaluate("tiny", eval_split, run, ablate=["audio"], batch_size=4)
    rollouts = [
        {"step": s, "id": str(i), "completion": AHA if (s + i) % 3 == 0 else PLAIN, "reward": 1.0,
         "advantage": 0.5, "rewards/accuracy": float(i == 1), "needs": "audio"}
        for s in (1, 2) for i in range(4)
    ]  # fmt: skip
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    metrics = [
        {"step": s, "reward": 0.1 * s, "kl": 0.01 * s, "completions/mean_length": 20.0} for s in (1, 2)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    return run


def test_page_is_self_contained(run_dir):
    path = build_report(run_dir)
    page = path.read_text()
    assert page.count('class="card"') == 8 + 8  # rollouts + predictions (none and audio)
    assert not re.search(r"""(?:src|href)=["']?(?!data:|#)[a-z]+:""", page)  # nothing fetched from anywhere
    media = json.loads(
        re.search(r'<script id="media" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert set(media) == {"0/0", "0/1", "0/2", "0/3"}  # each item's media once (split 0, item id)
    assert base64.b64decode(media["0/0"]["audio"].split(",")[1])[:4] == b"OggS"
    assert base64.b64decode(media["0/0"]["image"].split(",")[1])[:2] == b"\xff\xd8"  # JPEG
    assert "<mark>Wait</mark>" in page and "&lt;b&gt;B&lt;/b&gt;" in page  # completions are escaped
    assert page.count('<img class="plot"') == 2 and "Which object makes the sound 1?" in page
    assert 'data-filter="needs" data-value="both"' in page


def test_cli_writes_the_page_without_a_split(tmp_path):
    (tmp_path / "rollouts.jsonl").write_text(json.dumps({"step": 1, "id": "x", "completion": AHA}) + "\n")
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "question not found" in (tmp_path / "r.html").read_text()


def _chromium_missing() -> str | None:
    if not CHROMIUM.exists():
        return (
            "no /usr/bin/chromium: run `apt-get update && apt-get install -y chromium` (Makefile test set-up)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install playwright (the test extra)"
    return None


def _open_browser(pw, problems: list[str]):
    """(browser, page) in headless Chromium; console errors and page errors are appended to ``problems``."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page()
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    return browser, page


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_report_in_headless_chromium(run_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    path = build_report(run_dir)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser, page = _open_browser(pw, problems)
        page.on(
            "request",
            lambda req: problems.append(req.url) if not req.url.startswith(("file:", "data:")) else None,
        )
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert page.locator("#count").inner_text() == "16"
        page.click('#filters button[data-filter="correct"][data-value="0"]')  # wrong only
        wrong = int(page.locator("#count").inner_text())
        assert 0 < wrong < 16 and page.locator(".card:visible").count() == wrong
        page.click('#filters button[data-filter="aha"][data-value="1"]')
        assert int(page.locator("#count").inner_text()) < wrong
        page.click('#filters button[data-filter="correct"][data-value="all"]')
        page.click('#filters button[data-filter="aha"][data-value="all"]')
        assert page.locator("#count").inner_text() == "16"
        # The embedded media decode: the image has pixels, the Ogg audio has a duration of about 1 s.
        assert page.eval_on_selector(".card img", "img => img.complete && img.naturalWidth") > 0
        duration = page.eval_on_selector(".card audio", AUDIO_DURATION)
        assert duration == pytest.approx(1.0, abs=0.05)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_torn_last_line_is_ignored(tmp_path):
    rows = [{"step": 1, "id": "x", "completion": AHA}, {"step": 2, "id": "y", "completion": PLAIN}]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "id": "z", "compl'
    (tmp_path / "rollouts.jsonl").write_text(text)
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().count('class="card"') == 2


HOSTILE = ["<!--<script>", "</script><script>alert(1)</script>", "a&b\"'>", "<!-- x -->"]


def _hostile_report(tmp_path: Path) -> Path:
    """A report whose ids and texts are the HOSTILE strings, with real media for each."""
    from media_helpers import make_row, write_image, write_split, write_tone

    rows = []
    for i, sid in enumerate(HOSTILE):
        write_image(tmp_path / f"images/sample_{i}.png")
        write_tone(tmp_path / f"audios/sample_{i}.wav", seconds=0.2)
        rows.append({**make_row(i), "problem_id": sid})
    split = write_split(tmp_path, rows)
    run = tmp_path / "run"
    run.mkdir()
    rollouts = [
        {"step": 1, "id": sid, "completion": f"<think>{sid}</think><answer>A</answer>"} for sid in HOSTILE
    ]
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    return build_report(run, data=split)


def test_hostile_ids_cannot_close_or_comment_out_the_embedded_json(tmp_path):
    page = _hostile_report(tmp_path).read_text()
    start = page.index('<script id="media" type="application/json">') + len(
        '<script id="media" type="application/json">'
    )
    embedded = page[start : page.index("</script>", start)]
    # In script data the HTML tokenizer reacts only to "<": without one it cannot leave the element early
    # or enter the (double-)escaped states that "<!--<script>" opens. Was: the raw ids, "<" and all.
    assert "<" not in embedded
    media = json.loads(embedded)  # what the page's JSON.parse reads
    assert sorted(media) == sorted(f"0/{h}" for h in HOSTILE) and all(
        set(m) == {"image", "audio"} for m in media.values()
    )
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the media JSON and the page's code


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_hostile_report_still_works_in_headless_chromium(tmp_path):
    """With ids and texts like "<!--<script>": every card shows, every image and sound decodes, the
    filters still filter, and the page raises no error."""
    from playwright.sync_api import sync_playwright

    path = _hostile_report(tmp_path)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser, page = _open_browser(pw, problems)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        n = len(HOSTILE)
        assert page.locator("#count").inner_text() == str(n) and page.locator(".card").count() == n
        widths = page.eval_on_selector_all(".card img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert len(widths) == n and all(w > 0 for w in widths)
        durations = page.eval_on_selector_all(".card audio", f"els => Promise.all(els.map({AUDIO_DURATION}))")
        assert len(durations) == n and all(d == pytest.approx(0.2, abs=0.05) for d in durations)
        page.click('#filters button[data-filter="aha"][data-value="0"]')  # no trace self-corrects
        assert page.locator("#count").inner_text() == str(n)
        page.click('#filters button[data-filter="aha"][data-value="1"]')
        assert page.locator("#count").inner_text() == "0" and page.locator(".card:visible").count() == 0
        page.click('#filters button[data-filter="aha"][data-value="all"]')
        assert page.locator(".card:visible").count() == n
        browser.close()
    assert problems == []


def test_a_metrics_row_without_a_step_is_named(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n{"reward": 0.7}\n')
    with pytest.raises(
        ValueError, match=r"metrics.jsonl: row 1: a metrics row needs an integer 'step', got None"
    ):
        build_report(tmp_path)


@pytest.fixture
def demo_like(scripted, eval_split: Path, tmp_path: Path) -> Path:
    """`make demo`'s layout: grpo/ (a training run), eval_base/ and eval_grpo/ one level down."""
    root = tmp_path / "demo"
    grpo = root / "grpo"
    grpo.mkdir(parents=True)
    (grpo / "config.yaml").write_text(
        "model: {path: runs/demo/sft/final}\nrollout: {num_generations: 4}\n"
        f"train: {{lr: 0.0002, max_steps: 3}}\ndata: {{train_path: {eval_split}}}\n"
    )
    metrics = [{"step": s, "reward": 0.2 * s, "step_time": 30.0} for s in (1, 2, 3)]
    (grpo / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (grpo / "rollouts.jsonl").write_text(json.dumps({"step": 3, "id": "1", "completion": AHA}) + "\n")
    scripted.script = {0: [PLAIN], 1: [PLAIN], 2: [PLAIN], 3: [PLAIN]}
    evaluate("tiny", eval_split, root / "eval_base", ablate=["audio", "image"], batch_size=4)
    scripted.script = {0: [PLAIN], 1: [AHA], 2: [PLAIN], 3: [PLAIN]}
    evaluate("tiny", eval_split, root / "eval_grpo", ablate=["audio", "image"], batch_size=4)
    return root


def test_report_gathers_the_runs_evals_with_header_charts_and_verdicts(demo_like):
    page = build_report(demo_like).read_text()
    assert re.search(r"<th>G</th><td>4</td>", page) and "<th>lr</th><td>0.0002</td>" in page
    assert "<th>steps done</th><td>3</td>" in page and "1.5 min (mean step time x steps)" in page
    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    assert len(charts) == 2  # accuracy with CI, ablation drops
    assert charts[0].count('class="bar"') == 2 * 3 and charts[0].count('class="ci"') == 2 * 3
    assert charts[1].count('class="bar"') == 2 * 2
    assert "eval_base, none: 50.0%" in charts[0] and "eval_grpo, none: 75.0%" in charts[0]
    assert "Evaluation: eval_base" in page and "Evaluation: eval_grpo" in page
    assert 'data-value="eval eval_grpo"' in page and 'data-value="rollouts"' in page
    assert "prediction <b>B</b> · gold <b>B</b>" in page  # the rollout's answer, parsed; gold from the split
    assert '<img class="plot" alt="curves.png"' in page


def test_report_cli_takes_evals_kept_elsewhere(demo_like, tmp_path):
    (demo_like / "eval_grpo").rename(tmp_path / "elsewhere")
    args = [
        "report",
        str(demo_like),
        "--eval",
        str(tmp_path / "elsewhere"),
        "--out",
        str(tmp_path / "r.html"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Evaluation: elsewhere" in (tmp_path / "r.html").read_text()
    bad = CliRunner().invoke(app, ["report", str(demo_like), "--eval", str(tmp_path)])
    assert bad.exit_code != 0


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_charts_render_non_empty_in_headless_chromium(demo_like, tmp_path):
    from playwright.sync_api import sync_playwright

    path = build_report(demo_like)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser, page = _open_browser(pw, problems)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        sizes = page.eval_on_selector_all(
            "svg.chart",
            "svgs => svgs.map(s => Array.from(s.querySelectorAll('rect.bar')).map(r => {"
            " const b = r.getBBox(); return b.width * b.height; }))",
        )
        assert len(sizes) == 2 and all(len(bars) >= 4 and all(a > 0 for a in bars) for bars in sizes)
        assert page.eval_on_selector("img.plot", "img => img.complete && img.naturalWidth") > 0
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert problems == [] and (tmp_path / "report.png").stat().st_size > 10_000
