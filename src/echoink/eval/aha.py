"""An "aha moment" detector: self-correction or explicit re-examination inside ``<think>``.

Two signals, both read only inside the think block, with quoted speech ("...") masked out so that a
clip in which someone says "wait" is not a revision:

- revision markers in context: a lexicon of phrases that revise or re-examine an earlier claim
  ("wait," / "on second thought" / "re-evaluate" / "listening again" / "I was wrong" / "at first I
  thought"), plus weak words that count only in a revising context ("hmm, no", "but wait",
  "Actually," opening a sentence). Bare "but", "however", "hmm" and "actually" are contrast or filler
  and do not count.
- an answer switch: the first option letter the trace asserts ("the answer is B", "so A.",
  "I choose option C", "..., option A.") is not among the letters of the final answer. A letter
  must be upper case, so the article in "the answer is a cat" asserts nothing.

Measured on the 80 hand-labelled traces in tests/fixtures/aha_traces.jsonl (tests/eval/test_aha.py
pins these): precision 0.921, recall 0.946 overall (TP 35, FP 3, FN 2, TN 40). By split: dev (44,
tuned on) 1.0 / 1.0; heldout (20) 1.0 / 1.0; hard (16 adversarial traces written after the detector
was frozen) 0.667 / 0.75. Its misses: re-examination phrased without a lexicon phrase ("listening to
it a second time", a tentative "Option D seems right" revised without an assertion pattern); its
false alarms: an unquoted "Wait." that is text on a sign, a negated "no need to re-check", and a
sentence-opening "Actually," that revises nothing. All traces are ours, not model outputs: expect
lower precision on a real policy's traces; read the top examples in the report.

>>> d = detect("<think>So the answer is A. Wait, the beep is low, so B.</think><answer>B</answer>")
>>> d.found, d.switch, [m.text for m in d.markers]
(True, ('A', 'B'), ['Wait'])
>>> detect('<think>He shouts "wait!" and runs; option A.</think><answer>A</answer>').found
False
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..scoring.rewards import parse_answer

_I = re.IGNORECASE
# Strong markers: a revision or re-examination wherever they occur (inside the think block).
_STRONG = [
    r"\bwait\b(?=\s*[,.!:;…—-]|\s+(?:a (?:second|moment|minute)|no\b|actually\b|let\b|that\b|this\b))",
    r"\bon second thought\b",
    r"\bre-?(?:evaluat|consider|examin|think|check|listen|read|assess)\w*",
    r"\bdouble[- ]check\w*",
    r"\b(?:listen|look|hear)\w*\b[^.;:!?]{0,30}?\b(?:again|more carefully|more closely|once more)\b",
    r"\b(?:up)?on (?:closer|further|second) (?:inspection|look|listen\w*|examination|thought)\b",
    r"\bI (?:was|am) (?:wrong|mistaken)\b",
    r"\bthat(?:'s| is| was) (?:wrong|incorrect|not right|a mistake)\b",
    r"\b(?:a|my) mistake\b",
    r"\bI made (?:a|an) (?:error|mistake)\b",
    r"\b(?:at first|initially),? I (?:thought|read|heard|assumed|believed|said)\b",
    r"\bI (?:initially|first) (?:thought|read|heard|assumed|believed|said)\b",
    r"\bthan I (?:first |initially )?thought\b",
    r"\bscratch that\b",
    r"\bcorrection:",
    # Weak words, counted only in a revising context.
    r"\bhmm+\b[\s,.!…]*(?:no\b|wait\b|but\b|actually\b)",
    r"\bbut (?:wait|actually)\b|\bbut no[,.!:;]",  # "but no commentator" is contrast
    r"(?:^|(?<=[.!?]\s))(?:Actually|No),",
]
_MARKERS = re.compile("|".join(f"(?:{p})" for p in _STRONG[:-1]), _I)
_CASED = re.compile(_STRONG[-1])  # "Actually," / "No," opening a sentence: case matters
# Letter assertions. Words are case-insensitive, the letter is not.
_ASSERT = re.compile(
    r"(?i:\b(?:answer|choice)\s+(?:is|would be|should be|must be)\s*:?\s*(?:option\s+)?)\(?([A-H])\b(?!')"
    r"|(?i:\b(?:so|thus|therefore|hence)\s+(?:it'?s\s+)?)\(?([A-H])\)?(?=\s*[.,;!]|\s*</think>|\s*$)"
    r"|(?i:\b(?:choose|pick|select|go with)\s+(?:option\s+)?)\(?([A-H])\b"
    r"|\(?\b([A-H])\)?(?i:\s+is\s+(?:the\s+)?(?:correct|right|answer)\b)"
    r"|(?i:\boption\s+)\(?([A-H])\)?(?=\s*(?:[.,;:!?]|</think>|$))"
)
_QUOTED = re.compile(r"\"[^\"\n]{0,300}\"|“[^”\n]{0,300}”")


@dataclass(frozen=True)
class Marker:
    start: int
    """Offset in the completion."""
    end: int
    text: str


@dataclass(frozen=True)
class Aha:
    markers: tuple[Marker, ...]
    """Revision phrases found inside <think>, in order."""
    switch: tuple[str, str] | None
    """(first asserted letter, final answer) when they differ, else None."""

    @property
    def found(self) -> bool:
        return bool(self.markers) or self.switch is not None


def think_span(completion: str) -> tuple[int, int] | None:
    """(start, end) offsets of the think text: after <think>, up to </think>, <answer> or the end."""
    open_at = completion.find("<think>")
    if open_at < 0:
        return None
    start = open_at + len("<think>")
    ends = [i for i in (completion.find("</think>", start), completion.find("<answer>", start)) if i >= 0]
    return start, min(ends, default=len(completion))


def _mask_quotes(text: str) -> str:
    return _QUOTED.sub(lambda m: " " * len(m.group()), text)


def detect(completion: str) -> Aha:
    """Find revision markers and an answer switch inside the completion's <think> block."""
    span = think_span(completion)
    if span is None:
        return Aha((), None)
    start, end = span
    think = _mask_quotes(completion[start:end])
    found = [*_MARKERS.finditer(think), *_CASED.finditer(think)]
    markers = tuple(
        Marker(start + m.start(), start + m.end(), completion[start + m.start() : start + m.end()])
        for m in sorted(found, key=lambda m: m.start())
    )
    first = next((next(g for g in m.groups() if g) for m in _ASSERT.finditer(think)), None)
    final = parse_answer(completion)
    switch = (first, final) if first and final and first not in final.split(",") else None
    return Aha(markers, switch)
