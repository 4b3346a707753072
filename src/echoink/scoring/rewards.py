"""Rule rewards (paper Sec. 3.3): answer accuracy and ``<think>…</think><answer>…</answer>`` format.

A reward is a plain batch function ``fn(completions: list[str], **row_fields) -> list[float | None]``;
``None`` means "not applicable" (logged as NaN, ignored in the weighted sum). Row fields arrive as
lists aligned with ``completions`` (e.g. ``solution=["<answer>C</answer>", ...]``); extra fields
are ignored, so TRL-style calls with ``prompts=``/``completion_ids=`` work too. Rewards are looked
up by name in ``REWARDS``; ``score`` runs several and returns the (N, n_rewards) matrix.

Every parser here is linear in the completion length: ``str.find``/``rfind``/``count`` and one
regex over a single character class, never a backtracking pattern (a policy can emit megabytes of
unclosed tags).

>>> accuracy_reward(["<think>dog barks</think><answer>C. a dog</answer>", "<answer>B</answer>"],
...                 solution=["<answer>C</answer>", "C"])
[1.0, 0.0]
>>> format_reward(["<think>dog barks</think>\\n<answer>C</answer>", "<answer>C</answer>"])
[1.0, 0.0]
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..config_sections import ConfigError
from ..data import Sample
from ..data.answers import parse_answer, parse_answer_letters
from ..errors import UserError
from ..registry import Registry

__all__ = [
    "REWARDS",
    "accuracy_reward",
    "format_reward",
    "parse_answer",
    "register_rewards",
    "reward_fields",
    "score",
]

RewardFn = Callable[..., list[float | None]]
REWARDS: Registry[RewardFn] = Registry("reward")

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"


@REWARDS.register("accuracy")
def accuracy_reward(completions: list[str], solution: list[str], **_: Any) -> list[float]:
    """1.0 when the completion's answer names exactly the solution's letters (compared as sets), else 0.0.

    ``solution`` is the dataset form ``"<answer>C</answer>"`` or a bare letter; a multi-letter
    answer scores only against a multi-letter solution.

    >>> accuracy_reward(["<answer>A, C</answer>", "<answer>A, C</answer>", "<answer>C.</answer>"],
    ...                 ["<answer>C</answer>", "<answer>A,C</answer>", "c"])
    [0.0, 1.0, 1.0]
    """
    rewards = []
    for text, sol in zip(completions, solution, strict=True):
        given = parse_answer(text)
        wanted = sorted({letter.upper() for letter in parse_answer_letters(sol)})
        rewards.append(1.0 if given is not None and given.split(",") == wanted else 0.0)
    return rewards


def _is_format_ok(text: str) -> bool:
    s = text.strip()
    tags = (_THINK_OPEN, _THINK_CLOSE, _ANSWER_OPEN, _ANSWER_CLOSE)
    if not (s.startswith(_THINK_OPEN) and s.endswith(_ANSWER_CLOSE)):
        return False
    if any(s.count(tag) != 1 for tag in tags):
        return False
    think_end = s.find(_THINK_CLOSE)
    if not s[len(_THINK_OPEN) : think_end].strip():
        return False
    rest = s[think_end + len(_THINK_CLOSE) :].lstrip()
    if not rest.startswith(_ANSWER_OPEN):
        return False
    return bool(rest[len(_ANSWER_OPEN) : -len(_ANSWER_CLOSE)].strip())


@REWARDS.register("format")
def format_reward(completions: list[str], **_: Any) -> list[float]:
    """1.0 for exactly one non-blank ``<think>`` block, then exactly one non-blank ``<answer>`` block,
    and nothing else but whitespace; else 0.0.

    Unlike EchoInk's regex (whose ``.`` lookaheads stop at newlines), a second answer block on
    another line scores 0.

    >>> format_reward(["<think>x</think>\\n<answer>A</answer>\\n<answer>B</answer>", "<think> </think><answer>A</answer>"])
    [0.0, 0.0]
    """
    return [1.0 if _is_format_ok(text) else 0.0 for text in completions]


@REWARDS.register("grounding")
def grounding_reward(
    completions: list[str],
    solution: list[str],
    counterfactual_prob: list[float | None] | None = None,
    **_: Any,
) -> list[float | None]:
    """Modality grounding (docs/grounding.md): ``-counterfactual_prob`` for a correct completion, 0.0 for a
    wrong one, None where no counterfactual was computed. ``counterfactual_prob`` is the probability that
    the policy gives the same answer with the needed modality removed, a row field the experience step
    computes (``rl.rollout.counterfactual_pass``); without it every value is None.

    >>> grounding_reward(["<answer>B</answer>", "<answer>C</answer>", "<answer>B</answer>", "<answer>B</answer>"],
    ...                  ["B", "B", "B", "B"], [0.75, 0.75, None, 0.0])
    [-0.75, 0.0, None, 0.0]
    """
    if counterfactual_prob is None:
        return [None] * len(completions)
    correct = accuracy_reward(completions, solution)
    # 0.0 - p, not -p: a grounded answer (p = 0) logs 0.0, not -0.0
    return [
        None if p is None else (0.0 - float(p) if ok == 1.0 else 0.0)
        for ok, p in zip(correct, counterfactual_prob, strict=True)
    ]


@REWARDS.register("modality_credit")
def modality_credit_reward(
    completions: list[str], modality_credit: list[float | None] | None = None, **_: Any
) -> list[float | None]:
    """Per-completion modality credit (docs/grounding.md): the completion's mean log-prob gain over its
    ``<think>`` span (``algo.credit_span``) from the modality ``algo.counterfactual_ablate`` removes, clipped
    to ``algo.credit_clip``; a row field the experience step computes (``rl.credit_pass``). Every
    completion gets its own, right or wrong: the accuracy reward decides right from wrong, the credit which
    of two equally right completions used the modality. None where not applicable or not computed.

    >>> modality_credit_reward(["<answer>B</answer>", "x", "y"], [0.5, None, -0.25])
    [0.5, None, -0.25]
    """
    if modality_credit is None:
        return [None] * len(completions)
    return [None if c is None else float(c) for c in modality_credit]


def _as_fields(rows_or_fields: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> dict[str, list]:
    if isinstance(rows_or_fields, Mapping):
        return {key: list(values) for key, values in rows_or_fields.items()}
    rows = list(rows_or_fields)
    return {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}


def score(
    completions: list[str],
    rows_or_fields: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    weights: Mapping[str, float],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Run the rewards named in ``weights`` and combine them.

    ``rows_or_fields`` is either a mapping field -> list (aligned with ``completions``) or a list of
    row dicts. Returns ``(matrix [N, K] float32 with NaN where a reward returned None,
    weighted_sum [N] with None entries counted as 0, names [K])`` in the order of ``weights``.

    >>> m, total, names = score(["<think>a</think><answer>B</answer>"], [{"solution": "A"}],
    ...                         {"accuracy": 1.0, "format": 0.5})
    >>> m.tolist(), total.tolist(), names
    ([[0.0, 1.0]], [0.5], ['accuracy', 'format'])
    """
    fields = _as_fields(rows_or_fields)
    names = list(weights)
    columns = []
    for name in names:
        values = REWARDS.get(name)(completions=completions, **fields)
        if len(values) != len(completions):
            raise UserError(
                f"reward {name!r} returned {len(values)} values for {len(completions)} completions"
            )
        columns.append([float("nan") if v is None else float(v) for v in values])
    matrix = torch.tensor(columns, dtype=torch.float32).reshape(len(names), len(completions)).T  # [N, K]
    w = torch.tensor([weights[name] for name in names], dtype=torch.float32)
    return matrix, (matrix * w).nansum(dim=1), names


def register_rewards(weights: Mapping[str, float]) -> None:
    """Check every reward name of ``algo.rewards``; a ``"package.module:function"`` name imports the
    user's function and registers it under that name. Raises ConfigError naming the field."""
    for name in weights:
        if name in REWARDS:
            continue
        field = f"algo.rewards.{name}"
        if ":" not in name:
            raise ConfigError(
                f"{field}: unknown reward {name!r}; valid: {', '.join(REWARDS.names())} "
                "or 'package.module:function'"
            )
        module, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"{field}: cannot import the reward ({err})") from None
        if not callable(fn):
            raise ConfigError(f"{field}: {name} is not a function")
        REWARDS.register(name)(fn)


def reward_fields(samples: Sequence[Sample], group_size: int) -> dict[str, list]:
    """Per-completion row fields for the reward functions: ``solution`` plus metadata shared by all rows."""
    fields: dict[str, list] = {"solution": [s.solution for s in samples for _ in range(group_size)]}
    common = set.intersection(*(set(s.metadata) for s in samples)) if samples else set()
    for key in sorted(common - {"solution"}):
        fields[key] = [s.metadata[key] for s in samples for _ in range(group_size)]
    return fields
