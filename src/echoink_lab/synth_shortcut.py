"""A controllable unimodal shortcut in the embedded benchmark (``echoink data synth --shortcut P``).

The ``shortcut_where`` family needs both senses: the tone names a colour, the picture says where in a
row of four objects that colour is (options: first .. fourth). A visual cue the question never
mentions, a dark frame around one object, can be laid over it:

* ``aligned``: the frame is on the answer, so the picture alone suffices (a fraction P of training items);
* ``broken``: the frame is on a wrong object (half of every held-out split);
* ``none``: no frame (the rest, the "neutral" items).

``SynthSpec.heldout`` can add an aligned part to held-out splits (the experiment does, to report it).

Rows carry ``shortcut: aligned | broken | none``, so evaluation reports accuracy by it. A model that
follows the frame scores ~100% on aligned items, ~0% on broken ones and chance on neutral ones; a
model that listens scores the same on all three. Why a frame and four places: the cue must be able to
point at every answer letter (a "None of them" option could not be framed), and four 56-px objects keep
each object on whole 28-px token cells at the easy difficulty, as the other families do.

The cue draws from its own RNG stream, so an item's question, scene, audio and trace do not depend on
whether it is framed; the status of an item is a function of (seed, split, index) alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .synth_media import FRAME_PX
from .synth_scene import (
    COLOURS,
    LETTERS,
    OPT_IN_BLOCK,
    Cue,
    Difficulty,
    Plan,
    Step,
    _fill,
    _final,
    _scene,
    family,
    hear,
    position_words,
    see,
)

STATUSES = ("aligned", "broken", "none")
HELDOUT = ("broken", "none")
"""The parts of a held-out split, one schedule block each in turn (add "aligned" to measure it held out)."""
SHORTCUT_FAMILIES = ("shortcut_where",)
"""Families whose option i names the i-th object from the left, so a frame on object i points to option i."""
_K = 4  # objects in the row

OPT_IN_BLOCK["shortcut_where"] = 4  # one item per answer letter per schedule block


@family("shortcut_where", "both")
def shortcut_where(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """Tone pitch -> colour; the image says where that colour is in a row of four. Options: the four places."""
    level = int(rng.integers(len(COLOURS)))
    colour = COLOURS[level]
    scene = _scene(rng, _fill(rng, colour, letter, [c for c in COLOURS if c != colour], _K))
    options = list(position_words(_K))
    cue = Cue("tone", level)
    steps = (hear(cue, rng), see(scene, rng, letter), Step(f"So {colour} is {options[letter]}."))
    steps += (_final(options, letter),)
    # grid-aligned difficulties: four objects of the difficulty's height, each on whole token cells
    canvas = (_K * diff.canvas[1], diff.canvas[1]) if diff.grid_aligned else None
    q = "The tone names a colour. Where is the object of that colour?"
    return Plan("shortcut_where", "both", q, tuple(options), letter, tuple(scene), cue, False, steps, canvas)


def cue_status(
    family_name: str,
    split: str,
    block: int,
    aligned_fraction: float,
    rng: np.random.Generator,
    heldout: tuple[str, ...] = HELDOUT,
    conflict_frames: float = 0.0,
) -> str:
    """Whether an item gets the frame and where: ``train`` items are framed with probability
    ``aligned_fraction`` (else none), on a wrong object with probability ``conflict_frames`` (conflict data, out
    of the framed share) and on the answer otherwise; one uniform draw decides, so ``conflict_frames = 0`` gives
    the same statuses as before it existed. Every other split cycles through ``heldout`` by schedule
    block, so each part has every answer letter equally often. Families without the cue are always none."""
    if family_name not in SHORTCUT_FAMILIES:
        return "none"
    if split == "train":
        u = rng.random()
        return "broken" if u < conflict_frames else "aligned" if u < aligned_fraction else "none"
    return heldout[block % len(heldout)]


def with_cue(plan: Plan, status: str, rng: np.random.Generator) -> Plan:
    """The plan with its frame placed as ``status`` says (broken: a uniformly drawn wrong object)."""
    if status == "none":
        return plan
    if status == "aligned":
        return replace(plan, mark=plan.answer)
    if status == "broken":
        wrong = [i for i in range(len(plan.scene)) if i != plan.answer]
        return replace(plan, mark=wrong[int(rng.integers(len(wrong)))])
    raise ValueError(f"unknown shortcut status {status!r}; valid: {', '.join(STATUSES)}")


def frame_trace(plan: Plan) -> str:
    """A reference trace that reads the frame instead of the tone: what a shortcut-taking cold start learns
    (``SynthSpec.frame_traces``). Only for a framed plan."""
    return _frame_text(plan.mark, position_words(len(plan.scene)))


def _frame_text(mark: int, places: tuple[str, ...]) -> str:
    final = _final(list(places), mark).text
    return f"<think>A dark frame marks the {places[mark]} object. {final}</think><answer>{LETTERS[mark]}</answer>"


FRAME_CORPUS = tuple(_frame_text(i, position_words(_K)) for i in range(_K))
"""The frame traces' text, for the tokenizer of an experiment that uses them."""


def status_of(plan: Plan) -> str:
    """The row's ``shortcut`` value: where the frame sits relative to the answer."""
    if plan.mark is None:
        return "none"
    return "aligned" if plan.mark == plan.answer else "broken"


def framed_object(pixels: np.ndarray, boxes: list[list[int]], dark: int = 70) -> int | None:
    """The index of the box whose outline is drawn in the frame colour, or None: reads the pixels, as a
    model following the cue would. pixels [H, W, 3] uint8; boxes (x0, y0, x1, y1) as in the row's scene."""
    best, best_frac = None, 0.5  # at least half of the outline must be dark
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        top = pixels[y0 + 1, x0 + FRAME_PX : x1 - FRAME_PX]  # [w, 3]; inside the FRAME_PX-wide band
        bottom = pixels[y1 - 2, x0 + FRAME_PX : x1 - FRAME_PX]
        edge = np.concatenate([top, bottom])
        frac = float((edge.max(axis=-1) < dark).mean()) if len(edge) else 0.0
        if frac > best_frac:
            best, best_frac = i, frac
    return best
