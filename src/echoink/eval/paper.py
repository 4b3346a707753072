"""How EchoInk-R1 scored its models, so a number of ours can be put next to the paper's (80.53 -> 85.77).

Its eval script (HarryHsing/EchoInk src/omniInstruct-v1_eval_valid.py, ``extract_choice``) reads the
answer leniently: the first ``<answer>X</answer>`` with X in A-D, else the first standalone letter
A-D anywhere, case-insensitive, so the article "a" reads as A and "A or C" as A. echoink's own
accuracy uses the rewards' strict parser (a missing or ambiguous answer is wrong). The paper's RL
model was decoded with one sample at T = 1, top-p 0.95 (``PAPER_SAMPLING``); its base model greedily.

>>> [echoink_choice(t) for t in ["<think>x</think><answer> c </answer>", "I see a dog", "A or C", "none"]]
['C', 'A', 'A', '?']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# Verbatim from extract_choice (the answer tag first, then the "fallback" letter search).
_ANSWER_RE = re.compile(r"<answer>\s*([A-D])\s*</answer>", re.I)
_LETTER_RE = re.compile(r"\b([A-D])\b", re.I)

PAPER_SAMPLING: dict[str, Any] = {"samples": 1, "temperature": 1.0, "top_p": 0.95}
"""EchoInk's RL-model decoding: ``generate(do_sample=True, top_p=0.95, temperature=1)``, one sample."""


def echoink_choice(reply: str) -> str:
    """The letter EchoInk's ``extract_choice`` reads from a completion, or "?" when it finds none.

    Its script decodes prompt + completion and keeps what follows the first "\\nassistant"; given
    the completion alone, that split is a no-op.
    """
    if "\nassistant" in reply:
        reply = reply.split("\nassistant", 1)[1].strip()
    m = _ANSWER_RE.search(reply) or _LETTER_RE.search(reply)
    return m.group(1).upper() if m else "?"


def lenient_accuracy(rows: Sequence[dict[str, Any]]) -> float:
    """Share of prediction rows whose completion EchoInk's parser reads as the answer (its metric)."""
    if not rows:
        return 0.0
    return sum(echoink_choice(r["completion"]) == r["answer"] for r in rows) / len(rows)


def is_paper_decoding(decoding: dict[str, Any]) -> bool:
    """Whether a stored ``Decoding`` (as a dict) is EchoInk's RL-model decoding."""
    return decoding.get("mode") == "sample" and all(decoding.get(k) == v for k, v in PAPER_SAMPLING.items())
