"""The one answer parser: which option letters a completion's answer, or a row's solution, names.

Rewards, evaluation and the data loader all read letters through here, so a solution
``<answer>C. a cat</answer>`` means C everywhere (a second parser used to store it as "C,A").

Every parser here is linear in the text length: ``str.find``/``rfind`` and one regex over a single
character class, never a backtracking pattern (a policy can emit megabytes of unclosed tags).
"""

from __future__ import annotations

import re

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
# Separators between letters in a list answer ("A, C", "A and C", "A/C"). One character class, so
# finditer is linear.
_LIST_TOKEN = re.compile(r"[^\s,;/&]+")
_MARKS = "().:"  # "(C)", "C.", "C)", "C:" all name C
_MAX_LIST_TOKENS = 64  # a longer "list" is not an answer; the cap keeps the Python loop short


def last_answer_body(text: str) -> str | None:
    """Content of the last well-formed ``<answer>…</answer>`` block, or None.

    The last well-formed block opens at the last ``<answer>`` that has a ``</answer>`` after it and
    ends at the first ``</answer>`` after that opening. Three linear scans, no retries.
    """
    last_close = text.rfind(_ANSWER_CLOSE)
    if last_close < 0:
        return None
    start = text.rfind(_ANSWER_OPEN, 0, last_close)
    if start < 0:
        return None
    start += len(_ANSWER_OPEN)
    return text[start : text.find(_ANSWER_CLOSE, start)]


def _single_letter(token: str) -> str | None:
    core = token.strip(_MARKS)
    if len(core) == 1 and core.isascii() and core.isalpha():
        return core.upper()
    return None


def _letters_of(body: str) -> list[str] | None:
    """Letters an answer body names, or None if it is not one of the accepted forms.

    Accepted: a list of letter marks ("C", "(C)", "c.", "A, C", "A and C") or one mark followed by
    option text ("C. a dog barking", "(C) a dog"). Anything else ("A or B", "Cat", "I think C") is None.
    """
    letters: set[str] = set()
    for i, m in enumerate(_LIST_TOKEN.finditer(body)):
        token = m.group()
        if token.lower() == "and":
            continue
        letter = _single_letter(token) if i < _MAX_LIST_TOKENS else None
        if letter is None:
            break  # not a pure list; maybe a mark followed by option text
        letters.add(letter)
    else:
        return sorted(letters) or None
    head = body.lstrip()
    first, rest = (head.split(None, 1) + [""])[:2]
    # The mark must carry punctuation, so "A or B" is not read as "A" plus option text "or B".
    if first[:1] in _MARKS or first[-1:] in _MARKS:
        letter = _single_letter(first)
        if letter is not None and rest.strip():
            return [letter]
    return None


def parse_answer(completion: str) -> str | None:
    """The answer a completion gives: letters of its last well-formed ``<answer>`` block, sorted and
    comma-joined ("C", "A,C"); None when there is no such block or its content is not a letter answer.

    >>> parse_answer("<think>hmm</think><answer>(c)</answer>")
    'C'
    >>> parse_answer("<answer>A</answer> on reflection <answer>C, A</answer>")
    'A,C'
    >>> parse_answer("<answer>A or B</answer>") is None, parse_answer("<answer>B") is None
    (True, True)
    """
    body = last_answer_body(completion)
    if body is None:
        return None
    letters = _letters_of(body)
    return ",".join(letters) if letters else None


def parse_answer_letters(solution: str) -> list[str]:
    """Letters a dataset solution names, sorted: the body of its last ``<answer>`` block, or the
    whole string when it has none; [] when that is not a letter answer.

    >>> parse_answer_letters("<answer>C</answer>"), parse_answer_letters("B"), parse_answer_letters("<answer>A,C</answer>")
    (['C'], ['B'], ['A', 'C'])
    >>> parse_answer_letters("<answer>C. a cat</answer>"), parse_answer_letters("<answer>the cat</answer>")
    (['C'], [])
    """
    body = last_answer_body(solution)
    return _letters_of(solution if body is None else body) or []
