"""The report page's skeleton, style and script (kept in Python so a wheel carries them without package data)."""

from __future__ import annotations

import json
from string import Template

PAGE = Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>$title</title>
<style>$css</style>
</head><body>
<h1>$title</h1>
$sections
<h2>Completions</h2>
<div id="filters">$filters</div>
<p>showing <span id="count">$total</span> of $total</p>
<div id="cards">$cards</div>
<script id="media" type="application/json">$media</script>
<script>$js</script>
</body></html>
"""
)

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
tr.group td { color: #555; font-size: 0.9em; }
img.plot { max-width: 100%; display: block; margin: 0.5em 0; }
#filters .group { margin-right: 1.2em; white-space: nowrap; display: inline-block; margin-bottom: 0.3em; }
#filters .label { font-weight: bold; margin-right: 0.3em; }
#filters button { border: 1px solid #888; background: #fff; padding: 0.1em 0.6em; cursor: pointer; }
#filters button.on { background: #335; color: #fff; }
.card { border: 1px solid #ccc; border-radius: 6px; margin: 0.6em 0; }
.card[hidden] { display: none; }
.card .head { background: #f3f3f6; padding: 0.3em 0.6em; font-size: 0.9em; }
.card .body { display: flex; gap: 1em; padding: 0.6em; }
.card .media img { max-width: 240px; display: block; margin-bottom: 0.4em; }
.card .media audio { width: 240px; }
.card .text { flex: 1; min-width: 0; }
pre.completion { white-space: pre-wrap; word-break: break-word; background: #fafafa; padding: 0.5em; }
.tag { color: #888; font-size: 0.85em; }
.think { color: #345; }
.answer { font-weight: bold; color: #063; }
mark { background: #ffe066; }
.pred { margin-left: 0.6em; } table.header th { background: #f3f3f6; }
svg.chart text { font-size: 11px; fill: #333; } figure { margin: 0.5em 0 1em; }
b.ok { color: #063; } b.bad { color: #a00; } b.aha { color: #b60; }
code { margin-right: 0.5em; font-size: 0.85em; }
"""

JS = """
(function () {
  const media = JSON.parse(document.getElementById("media").textContent);
  for (const el of document.querySelectorAll("[data-media]")) {
    const item = media[el.dataset.media] || {};
    const src = el.tagName === "IMG" ? item.image : item.audio;
    if (src) el.src = src;
  }
  const state = {};
  const cards = Array.from(document.querySelectorAll(".card"));
  const count = document.getElementById("count");
  function apply() {
    let shown = 0;
    for (const card of cards) {
      const visible = Object.entries(state).every(([k, v]) => v === "all" || card.dataset[k] === v);
      card.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = String(shown);
  }
  for (const button of document.querySelectorAll("#filters button")) {
    button.addEventListener("click", function () {
      const name = button.dataset.filter;
      state[name] = button.dataset.value;
      for (const other of document.querySelectorAll('#filters button[data-filter="' + name + '"]')) {
        other.classList.toggle("on", other === button);
      }
      apply();
    });
  }
  apply();
})();
"""


def script_json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` at all (JSON's \\u escapes).

    Escaping only ``</`` is not enough: an id such as ``<!--<script>`` moves the HTML tokenizer into
    its "double-escaped" script state, where ``</script>`` no longer ends the element, and the rest
    of the page (media, filters) becomes script text. With no ``<`` the tokenizer never leaves plain
    script data.

    >>> print(script_json({"<!--<script>": "a&b"}))
    {"\\u003c!--\\u003cscript\\u003e": "a\\u0026b"}
    """
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(**fields: str | int) -> str:
    """The page with ``title, sections, filters, total, cards, media`` filled in (values already HTML-safe)."""
    return PAGE.substitute(css=CSS, js=JS, **fields)
