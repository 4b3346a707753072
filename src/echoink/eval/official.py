"""Each benchmark's own scoring rule, applied to the completions echoink's strict accuracy scored.

The rules, as their releases compute them:

- ``omnibench_mmmu``: OmniBench's ``inference/answer_parsing.py`` (MMMU's ``parse_multi_choice_response``):
  "(A)" marks, else "A " , else "A.", else (for replies over 5 words) option texts found in the reply;
  several candidates: the last one. Its ``calculate_metrics.py`` parses the *answer text* with the same
  parser to get the gold letter, so an answer such as "A man is answering some questions" is gold "A"
  whatever its position; we do the same and count the items where that gold differs from the option
  the answer names (``gold_differs``).
- ``daily_omni_letter``: Daily-Omni's ``testmodel.py``: the reply's first non-space character if it is
  A-D (any case), else the whole reply, compared with the answer letter.
- ``vlmevalkit_exact_match``: VLMEvalKit's ``extract_characters_regex`` (WorldSense is scored by
  VLMEvalKit): a few "The answer is"-style prefixes removed (its missing commas glue some together),
  then the first capital A-D anywhere; a reply over 10 words without one reads as nothing.
- ``string_match``: MMAU's and MMAR's ``evaluation.py``: every word token of the answer text is in the
  reply, and no token that only a wrong choice has.

What "the reply" is: those scripts prompt for a bare reply; echoink's prompts ask for it inside
``<answer>`` tags, so the reply is the last ``<answer>`` block's content when the completion has one,
else the whole completion. For ``string_match``, which matches words, a reply that is an option letter
("C", "C.", "(C)") or a letter mark before text ("C. a dog") stands for that option's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ..data import Sample
from ..data.answers import last_answer_body, parse_answer
from ..data.importers import benchmark_of
from ..data.schema import OPTION_RE
from ..registry import Registry
from .stats import mean_and_interval

Rule = Callable[[str, Sample], bool]
RULES: Registry[Rule] = Registry("official scoring rule")
_WORD = re.compile(r"\b\w+\b")


def reply_of(completion: str) -> str:
    """The last well-formed ``<answer>…</answer>`` block's content (the one answer parser's reading,
    ``data.answers.last_answer_body``), else the whole completion."""
    body = last_answer_body(completion)
    return completion if body is None else body


def option_texts(sample: Sample) -> list[str]:
    return [OPTION_RE.match(o).group(2) for o in sample.options]


def mmmu_parse(response: str, index2ans: dict[str, str]) -> str | None:
    """MMMU's ``parse_multi_choice_response`` with ``default_answer=None`` (OmniBench passes 'N/A')."""
    response = f" {response} "
    choices = list(index2ans)
    candidates = [c for c in choices if f"({c})" in response]
    bracketed, by_index = bool(candidates), True
    if not candidates:
        candidates = [c for c in choices if f"{c} " in response]
    if not candidates:
        candidates = [c for c in choices if f"{c}." in response]
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, text in index2ans.items() if text.lower() in response.lower()]
        by_index = False
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if not by_index:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    else:
        starts = [response.rfind(f"({c})" if bracketed else f" {c} ") for c in candidates]
    return candidates[starts.index(max(starts))]  # np.argmax: the first of equal maxima


def _index2ans(sample: Sample) -> dict[str, str]:
    """Letter -> option text, as OmniBench's script builds it (always four options)."""
    return dict(zip(sample.letters[:4], option_texts(sample)[:4], strict=True))


def omnibench_gold(sample: Sample) -> str | None:
    """The gold letter OmniBench's calculate_metrics.py derives by parsing the answer text."""
    return mmmu_parse(sample.metadata.get("answer_text", ""), _index2ans(sample))


@RULES.register("omnibench_mmmu")
def omnibench_mmmu(reply: str, sample: Sample) -> bool:
    gold = omnibench_gold(sample) or sample.answer  # no gold: the script would stop (assert); use ours
    return mmmu_parse(reply, _index2ans(sample)) == gold


@RULES.register("daily_omni_letter")
def daily_omni_letter(reply: str, sample: Sample) -> bool:
    m = re.search(r"assistant\s*([\s\S]*)$", reply)  # its decode kept the chat turn; ours does not
    reply = m.group(1).strip() if m else reply
    m = re.match(r"\s*([A-D])", reply, re.I)
    picked = m.group(1).upper() if m else reply
    return bool(picked) and picked.strip().upper() == sample.answer.strip().upper()


# Verbatim, missing commas included: Python glues two pairs of them into one prefix each.
_VLMEVAL_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option is" "The correct option is", "Best answer:" "Best option:", "Answer:", "Option:",
)  # fmt: skip


def vlmevalkit_letter(reply: str) -> str:
    """VLMEvalKit's ``extract_characters_regex``: the first capital A-D after the prefixes, or "".

    (Its "over 10 words and no A-D: nothing" check returns what the search returns anyway.)

    >>> vlmevalkit_letter("The answer is C"), vlmevalkit_letter("Based on the clip"), vlmevalkit_letter("yes")
    ('C', 'B', '')
    """
    s = reply.strip()
    for prefix in _VLMEVAL_PREFIXES:
        s = s.replace(prefix, "")
    m = re.search(r"[ABCD]", s)
    return m.group(0) if m else ""


@RULES.register("vlmevalkit_exact_match")
def vlmevalkit_exact_match(reply: str, sample: Sample) -> bool:
    return vlmevalkit_letter(reply) == sample.answer


def _tokens(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def string_match(answer: str, prediction: str, choices: Sequence[str]) -> bool:
    """MMAU's / MMAR's ``string_match``.

    >>> string_match("Man", "a man", ["Man", "Woman"]), string_match("Man", "man or woman", ["Man", "Woman"])
    (True, False)
    """
    pred, gold = _tokens(prediction), _tokens(answer)
    if not pred:
        return False
    wrong: set[str] = set()
    for choice in choices:
        tokens = _tokens(choice)
        if tokens != gold:
            wrong |= tokens - gold
    return gold <= pred and pred.isdisjoint(wrong)


def as_option_text(reply: str, texts: Sequence[str]) -> str:
    """A letter reply stands for its option's text: "C" -> texts[2], "C. a dog" -> "a dog"; else the reply.

    >>> as_option_text("(b)", ["cat", "dog"]), as_option_text("B. a dog", ["cat", "dog"]), as_option_text("a dog", ["x", "y"])
    ('dog', 'a dog', 'a dog')
    """
    letters = parse_answer(f"<answer>{reply}</answer>")
    if letters is None or "," in letters or ord(letters) - ord("A") >= len(texts):
        return reply
    parts = reply.strip().split(None, 1)
    return parts[1] if len(parts) == 2 else texts[ord(letters) - ord("A")]


@RULES.register("string_match")
def string_match_rule(reply: str, sample: Sample) -> bool:
    texts = option_texts(sample)
    answer = sample.metadata.get("answer_text") or texts[ord(sample.answer[0]) - ord("A")]
    choices = sample.metadata.get("choices_as_released") or texts  # its scorer saw the choices as released
    return string_match(str(answer), as_option_text(reply, texts), [str(c) for c in choices])


def _block(scores: list[list[float]]) -> dict[str, Any]:
    acc, ci, _ = mean_and_interval(scores)
    return {"n": len(scores), "accuracy": acc, "ci95": list(ci)}


def official_summary(
    rows: Sequence[dict[str, Any]], samples: Sequence[Sample], conditions: Sequence[str]
) -> dict[str, Any]:
    """``{"benchmark", "official", "by_category"}`` for a split imported from one benchmark, else {}.

    ``official``: the rule's name and its accuracy (with a 95% CI) on the same completions as the strict
    accuracy, per condition; ``by_category``: strict and official accuracy by each of the benchmark's
    category fields (condition "none").
    """
    found = {benchmark_of(s.metadata) for s in samples}
    if len(found) != 1 or None in found:
        return {}
    bench = found.pop()
    rule, by_id = RULES.get(bench.official_rule), {s.id: s for s in samples}
    strict: dict[str, dict[str, list[float]]] = {c: {} for c in conditions}
    official: dict[str, dict[str, list[float]]] = {c: {} for c in conditions}
    for r in rows:
        if r["id"] in by_id and r["condition"] in strict:
            strict[r["condition"]].setdefault(r["id"], []).append(float(r["correct"]))
            ok = rule(reply_of(r["completion"]), by_id[r["id"]])
            official[r["condition"]].setdefault(r["id"], []).append(float(ok))
    block = {"rule": bench.official_rule, **_block(list(official["none"].values()))}
    block["by_condition"] = {c: _block(list(official[c].values()))["accuracy"] for c in conditions}
    if bench.official_rule == "omnibench_mmmu":
        block["gold_differs"] = sorted(s.id for s in samples if (omnibench_gold(s) or s.answer) != s.answer)
    return {
        "benchmark": bench.name,
        "official": block,
        "by_category": _by_category(bench, samples, strict, official),
    }


def _by_category(bench, samples, strict, official) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in bench.category_fields:
        groups: dict[str, list[str]] = {}
        for s in samples:
            if s.id in strict["none"]:
                groups.setdefault(str(s.metadata.get(name, "(none)")), []).append(s.id)
        out[name] = {
            value: {
                **_block([strict["none"][i] for i in ids]),
                "official_accuracy": _block([official["none"][i] for i in ids])["accuracy"],
            }
            for value, ids in sorted(groups.items())
        }
    return out
