"""The embedded benchmark's content: vocabulary, difficulty knobs, question families and reasoning traces.

Everything here is planning, no media: a family turns an RNG, the answer letter it must produce and a
``Difficulty`` into a ``Plan`` (objects in a row, an audio cue, the question, the options and the steps of
a reference trace). ``synth_media`` draws and sounds a Plan; ``synth`` writes the rows.

The world is small on purpose, so a tiny model can learn it: five colours, each named by a tone of one
pitch (rising pitch = rainbow order), three shapes, 3-4 objects in a left-to-right row, and beeps that
count objects from the left. The answer letter is chosen *before* the item is built, so letters are
balanced by construction and the question + options alone carry no information about the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from echoink.registry import Registry

COLOURS = ("red", "yellow", "green", "blue", "purple")
PITCHES = ("deep", "low", "mid", "high", "shrill")  # tone level i names COLOURS[i]
SHAPES = ("circle", "square", "triangle")
NUMBERS = ("zero", "one", "two", "three", "four", "five")
NONE = "None of them"
LETTERS = "ABCD"


def position_words(k: int) -> tuple[str, ...]:
    """How the trace and the options name the places in a row of ``k`` objects, left to right."""
    return ("left", "middle", "right") if k == 3 else ("first", "second", "third", "fourth", "fifth")[:k]


@dataclass(frozen=True)
class Difficulty:
    """Perceptual knobs behind ``--difficulty``; the questions and traces do not change with them. The
    defaults are "easy": the prototype's learnable setting (3 objects each filling 2x2 token cells of a
    168x56 image, a clean 1 s clip with octave-wide tone spacing)."""

    name: str
    n_objects: tuple[int, ...] = (3,)  # objects in a row (tone_where always uses 3: its options are places)
    # image (width, height); multiples of 28 = the vision tower's token cell
    canvas: tuple[int, int] = (168, 56)
    object_px: tuple[int, int] = (56, 56)  # object side, min..max; ignored when grid_aligned
    grid_aligned: bool = True  # each object fills whole 28x28 token cells (W / k wide, full height)
    overlap: float = 0.0  # how far (fraction of side) neighbours may push into each other
    clutter: int = 0  # up to this many grey distractor blobs
    pixel_noise: float = 0.0  # std of (uniform, luminance) pixel noise, 0-255 scale
    pitch_ratio: float = 1.7  # frequency ratio between neighbouring tone levels (the tone spacing)
    pitch_jitter: float = 0.0  # +- fraction of random detuning
    audio_seconds: tuple[float, float] = (1.0, 1.0)  # clip length min..max
    snr_db: float | None = None  # white noise at this signal-to-noise ratio; None = clean
    hum: bool = False  # a low background hum below the tone ladder
    # random timbre, tone length and beep spacing (else a pure 0.8 s tone and evenly spaced beeps)
    varied_sound: bool = False


DIFFICULTIES: Registry[Difficulty] = Registry("difficulty")
_MEDIUM = Difficulty(
    "medium", n_objects=(3, 4), canvas=(224, 112), object_px=(36, 52), grid_aligned=False, clutter=1,
    pixel_noise=8.0, pitch_ratio=1.4, pitch_jitter=0.01, audio_seconds=(1.5, 2.5), snr_db=20.0, varied_sound=True,
)  # fmt: skip
_HARD = replace(
    _MEDIUM, name="hard", canvas=(224, 224), object_px=(24, 40), overlap=0.3, clutter=3, pixel_noise=20.0,
    pitch_ratio=1.2, pitch_jitter=0.03, audio_seconds=(2.0, 3.0), snr_db=6.0, hum=True,
)  # fmt: skip
for _d in (Difficulty("easy"), _MEDIUM, _HARD):
    DIFFICULTIES.register(_d.name)(_d)


@dataclass(frozen=True)
class Obj:
    colour: str
    shape: str


@dataclass(frozen=True)
class Cue:
    """What the audio carries: ``kind`` "tone" (value = pitch level 0-4) or "beeps" (value = count)."""

    kind: str
    value: int

    def describe(self) -> dict[str, object]:
        if self.kind == "tone":
            return {"kind": "tone", "pitch": PITCHES[self.value], "colour": COLOURS[self.value]}
        return {"kind": "beeps", "count": self.value}


@dataclass(frozen=True)
class Step:
    """One sentence of the reference trace; ``wrong`` is a plausible misreading a self-correction revises."""

    text: str
    wrong: str | None = None
    sense: str = ""  # "listen" or "look": what the correction says to do again


@dataclass(frozen=True)
class Plan:
    family: str
    needs: str  # "audio" | "image" | "both"
    question: str
    options: tuple[str, ...]  # option texts without letters
    answer: int  # index into options
    scene: tuple[Obj, ...]  # left to right
    cue: Cue
    conflict: bool  # the cue names something the picture lacks; the answer is NONE
    steps: tuple[Step, ...]
    canvas: tuple[int, int] | None = None  # image size when the family needs another than the difficulty's
    mark: int | None = None  # the object framed by the visual shortcut cue (synth_shortcut), if any

    def trace(self, rng: np.random.Generator, correction_rate: float) -> tuple[str, bool]:
        """The reference ``<think>..</think><answer>X</answer>``; with probability ``correction_rate`` one
        reading step is first misread, then revised with "Wait, ...". Returns (trace, corrected)."""
        texts = [s.text for s in self.steps]
        fixable = [i for i, s in enumerate(self.steps) if s.wrong]
        corrected = bool(fixable) and rng.random() < correction_rate
        if corrected:
            i = fixable[int(rng.integers(len(fixable)))]
            s = self.steps[i]
            texts[i] = f"{s.wrong} Wait, {s.sense} again. {s.text}"
        return f"<think>{' '.join(texts)}</think><answer>{LETTERS[self.answer]}</answer>", corrected


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _choose(rng: np.random.Generator, pool: list, n: int) -> list:
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def _scene(rng: np.random.Generator, colours: list[str]) -> list[Obj]:
    return [Obj(c, SHAPES[int(rng.integers(len(SHAPES)))]) for c in colours]


def _fill(rng: np.random.Generator, target: str, slot: int, others: list[str], n: int) -> list[str]:
    """``n`` option texts: ``target`` at ``slot``, the rest drawn from ``others`` in random order."""
    rest = _choose(rng, others, n - 1)
    return rest[:slot] + [target] + rest[slot:]


def hear(cue: Cue, rng: np.random.Generator, max_count: int = 5) -> Step:
    """The listening step, with a neighbouring pitch level or beep count as the misreading."""
    if cue.kind == "tone":
        say = "The tone is {}, that means {}."
        alt = [v for v in (cue.value - 1, cue.value + 1) if 0 <= v < len(COLOURS)]
        w = alt[int(rng.integers(len(alt)))]
        return Step(
            say.format(PITCHES[cue.value], COLOURS[cue.value]), say.format(PITCHES[w], COLOURS[w]), "listen"
        )
    alt = [v for v in (cue.value - 1, cue.value + 1) if 1 <= v <= max_count]
    w = alt[int(rng.integers(len(alt)))]
    return Step(_beeps(cue.value), _beeps(w), "listen")


def _beeps(n: int) -> str:
    return f"I hear {NUMBERS[n]} beep{'s' if n > 1 else ''}."


def see(
    scene: list[Obj],
    rng: np.random.Generator,
    target: int | None,
    shapes: bool = False,
    lure: str | None = None,
) -> Step:
    """The looking step, listing the row left to right. The misreading swaps the target's colour with a
    neighbour's, or (no target) paints the ``lure`` colour onto one object; without either, none."""
    pos = position_words(len(scene))

    # Place before colour ("Left is red, ..."): when the model says a colour, the token just before it
    # names where to look, so reading the picture is one attention hop (colour-first traces such as
    # "I see red left" made a tiny model infer the place from how many colours it had already said,
    # and it never learned to read the image).
    def listing(colours: list[str]) -> str:
        if shapes:
            parts = [f"{p} is a {c} {o.shape}" for c, o, p in zip(colours, scene, pos, strict=True)]
        else:
            parts = [f"{p} is {c}" for c, p in zip(colours, pos, strict=True)]
        return _cap(", ".join(parts)) + "."

    colours = [o.colour for o in scene]
    wrong = list(colours)
    if target is not None:
        nb = [j for j in (target - 1, target + 1) if 0 <= j < len(scene)]
        j = nb[int(rng.integers(len(nb)))]
        wrong[target], wrong[j] = wrong[j], wrong[target]
    elif lure is not None:
        wrong[int(rng.integers(len(scene)))] = lure
    return Step(listing(colours), listing(wrong) if wrong != colours else None, "look")


def _final(options: list[str], answer: int) -> Step:
    return Step(f"{_cap(options[answer])} is option {LETTERS[answer]}.")


@dataclass(frozen=True)
class Family:
    needs: str
    plan: Callable[[np.random.Generator, int, Difficulty], Plan]


FAMILIES: Registry[Family] = Registry("question family")

# One block of the item schedule: how many items of each family, each a multiple of 4 so every family
# gets every answer letter equally often. 28 of 44 (64%) need both modalities.
FAMILY_BLOCK = {
    "tone_where": 12,
    "beep_colour": 8,
    "tone_shape": 8,
    "image_colour": 8,
    "colour_shape": 4,
    "audio_colour": 4,
}
# Families only made when named (``--families`` / ``--shortcut``), so the default mix stays as it was.
OPT_IN_BLOCK: dict[str, int] = {}


def family(name: str, needs: str) -> Callable:
    def add(fn: Callable[[np.random.Generator, int, Difficulty], Plan]) -> Callable:
        FAMILIES.register(name)(Family(needs, fn))
        return fn

    return add


def _tone_scene(rng: np.random.Generator, k: int, letter: int, place: int) -> tuple[int, list[Obj], bool]:
    """A tone level and ``k`` objects of distinct colours; letter D (3) = conflict: no object has the tone's
    colour; otherwise the tone's colour sits at ``place``."""
    level = int(rng.integers(len(COLOURS)))
    others = [c for c in COLOURS if c != COLOURS[level]]
    conflict = letter == 3
    colours = _choose(rng, others, k) if conflict else _fill(rng, COLOURS[level], place, others, k)
    return level, _scene(rng, colours), conflict


@family("tone_where", "both")
def tone_where(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """Tone pitch -> colour; the image says where that colour is. Options: the three places + None."""
    level, scene, conflict = _tone_scene(rng, 3, letter, letter)
    colour, options = COLOURS[level], [*position_words(3), NONE]
    cue = Cue("tone", level)
    target = None if conflict else letter
    deduce = f"No object is {colour}, so none of them." if conflict else f"So {colour} is {options[letter]}."
    steps = (hear(cue, rng), see(scene, rng, target, lure=colour), Step(deduce), _final(options, letter))
    q = "The tone names a colour. Where is the object of that colour?"
    return Plan("tone_where", "both", q, tuple(options), letter, tuple(scene), cue, conflict, steps)


def _shape_steps(scene: list[Obj], colour: str, shape: str | None, rng: np.random.Generator) -> Step:
    """Find the object by its colour and read its shape. Content, not place: the model looks for the
    colour in the picture (one attention hop), which a tiny model learns; reading places is far harder.
    The misreading names a wrong shape (or, for a colour that is absent, claims one)."""
    others = [s for s in SHAPES if s != shape]
    misread = f"The {colour} object is a {others[int(rng.integers(len(others)))]}."
    if shape is None:
        return Step(f"No object is {colour}, so none of them.", misread, "look")
    return Step(f"The {colour} object is a {shape}.", misread, "look")


def _shape_scene(
    rng: np.random.Generator, letter: int, diff: Difficulty
) -> tuple[int, list[Obj], bool, Step]:
    """A colour level, a row holding an object of that colour with shape ``letter`` (letter D: no such
    colour), and the step that finds it by colour and reads its shape."""
    k = int(rng.choice(diff.n_objects))
    place = int(rng.integers(k))
    level, scene, conflict = _tone_scene(rng, k, letter, place)
    if not conflict:
        scene[place] = Obj(COLOURS[level], SHAPES[letter])
    look = _shape_steps(scene, COLOURS[level], None if conflict else SHAPES[letter], rng)
    return level, scene, conflict, look


@family("tone_shape", "both")
def tone_shape(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """Tone pitch -> colour; the image says that object's shape. Options: the three shapes + None."""
    level, scene, conflict, look = _shape_scene(rng, letter, diff)
    options, cue = [*SHAPES, NONE], Cue("tone", level)
    steps = (hear(cue, rng), look, _final(options, letter))
    q = "The tone names a colour. What shape is the object of that colour?"
    return Plan("tone_shape", "both", q, tuple(options), letter, tuple(scene), cue, conflict, steps)


@family("colour_shape", "image")
def colour_shape(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """The question names a colour; the image says that object's shape (the audio is an idle cue).
    Options: the three shapes + None (letter D: the colour is not in the picture)."""
    level, scene, conflict, look = _shape_scene(rng, letter, diff)
    options = [*SHAPES, NONE]
    q = f"What shape is the {COLOURS[level]} object?"
    return Plan(
        "colour_shape", "image", q, tuple(options), letter, tuple(scene), _idle_cue(rng), conflict,
        (look, _final(options, letter)),
    )  # fmt: skip


@family("beep_colour", "both")
def beep_colour(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """The number of beeps counts objects from the left; the image says that object's colour. Letter D =
    conflict: one beep more than there are objects. Options: three of the row's colours + None."""
    k = int(rng.choice(diff.n_objects))
    scene = _scene(rng, _choose(rng, list(COLOURS), k))
    colours = [o.colour for o in scene]
    conflict = letter == 3
    count = k + 1 if conflict else int(rng.integers(1, k + 1))
    if conflict:
        options = [*_choose(rng, colours, 3), NONE]
        deduce = f"There are only {NUMBERS[k]} objects, so none of them."
    else:
        target = colours[count - 1]
        options = [*_fill(rng, target, letter, [c for c in colours if c != target], 3), NONE]
        deduce = f"{_cap(NUMBERS[count])} from the left is the {position_words(k)[count - 1]} one, {target}."
    cue = Cue("beeps", count)
    look = see(scene, rng, None if conflict else count - 1)
    steps = (hear(cue, rng, k + 1), look, Step(deduce), _final(options, letter))
    q = "Count the beeps. What colour is the object at that place from the left?"
    return Plan("beep_colour", "both", q, tuple(options), letter, tuple(scene), cue, conflict, steps)


def _idle_cue(rng: np.random.Generator) -> Cue:
    """An audio cue the question does not ask about."""
    if rng.random() < 0.5:
        return Cue("tone", int(rng.integers(len(COLOURS))))
    return Cue("beeps", int(rng.integers(1, 5)))


@family("image_colour", "image")
def image_colour(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """The colour at a named place; the audio is an idle cue. Options: four of the five colours."""
    k = int(rng.choice(diff.n_objects))
    scene = _scene(rng, _choose(rng, list(COLOURS), k))
    place = int(rng.integers(k))
    where, colour = position_words(k)[place], scene[place].colour
    options = _fill(rng, colour, letter, [c for c in COLOURS if c != colour], 4)
    steps = (see(scene, rng, place), Step(f"The {where} object is {colour}."), _final(options, letter))
    q = f"What colour is the {where} object?"
    return Plan(
        "image_colour", "image", q, tuple(options), letter, tuple(scene), _idle_cue(rng), False, steps
    )


@family("audio_colour", "audio")
def audio_colour(rng: np.random.Generator, letter: int, diff: Difficulty) -> Plan:
    """The colour the tone names; the picture is an unrelated row. Options: four of the five colours."""
    level = int(rng.integers(len(COLOURS)))
    options = _fill(rng, COLOURS[level], letter, [c for c in COLOURS if c != COLOURS[level]], 4)
    k = int(rng.choice(diff.n_objects))
    scene = _scene(rng, _choose(rng, list(COLOURS), k))
    cue = Cue("tone", level)
    steps = (hear(cue, rng), _final(options, letter))
    q = "Which colour does the tone name?"
    return Plan("audio_colour", "audio", q, tuple(options), letter, tuple(scene), cue, False, steps)


def schedule_block(families: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """One unshuffled block of (family, answer letter index) for the chosen families (default: all, in
    the FAMILY_BLOCK proportions): every family gets each letter equally often."""
    names = list(families or FAMILY_BLOCK)
    for name in names:
        FAMILIES.get(name)  # unknown names list the valid ones
    sizes = {**FAMILY_BLOCK, **OPT_IN_BLOCK}
    return [(name, i % 4) for name in names for i in range(sizes[name])]
