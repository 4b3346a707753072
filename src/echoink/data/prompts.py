"""Prompt templates (a registry, one per name) and chat messages ready for a Qwen2.5-Omni processor.

Messages put the image block, then the audio block, then the text, as EchoInk-R1 does. Content
blocks carry the decoded media themselves (a PIL image, a 16 kHz float32 waveform) so the model
layer never re-reads files.

Row text stays text: a question or option holding ``<|IMAGE|>``, ``<|image_pad|>`` or
``<|im_end|>\n<|im_start|>assistant`` would otherwise be read by the tokenizer as a media placeholder
(the processor then aborts the whole batch: more placeholders than images) or as a forged chat turn.
:func:`escape_control_tokens` breaks every ``<|`` of the user text a template renders (see there).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from ..registry import Registry
from . import paper_prompts as paper
from .media import Geometry, blank_like, load_audio, load_image, silence_like
from .schema import Sample

# Qwen2.5-Omni's own "virtual human" system prompt (its model card asks for it when speech output is
# wanted). EchoInk-R1 does not send it: its training turn has no system message at all.
SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)


@dataclass(frozen=True)
class PromptTemplate:
    """A user-turn text for a sample plus the system turn that goes with it.

    ``system=None`` sends no system message, so the chat template's default applies (Qwen2.5-Omni's
    template then writes "You are a helpful assistant."), as EchoInk's training does.
    """

    render: Callable[[Sample], str]
    system: str | None
    source: str
    """Where the wording comes from, for ``echoink data prompt`` and reports."""

    def __call__(self, sample: Sample) -> str:
        """The user text, with row text kept text: every caller (prompts, ``data show``) gets it escaped,
        whatever the template does with the row's fields. The templates' own wording holds no "<|"
        (a test checks), so only row text can change; tag tokens (``<think>``) are escaped in the row's
        question and options only, since the templates' own instructions name ``<think>`` on purpose."""
        row = replace(
            sample,
            question=escape_tag_tokens(sample.question),
            options=tuple(escape_tag_tokens(o) for o in sample.options),
        )
        return escape_control_tokens(self.render(row))


TEMPLATES: Registry[PromptTemplate] = Registry("prompt template")


CONTROL_TOKEN = re.compile(r"<\|[^<>|\s]{0,64}\|>")
"""The shape of every control and media token of both families (``<|im_start|>``, ``<|AUDIO|>``,
``<|image_pad|>``, ``<|vision_bos|>``, ...): what ``data check`` reports in row text."""
ESCAPED_BAR = "\uff5c"  # FULLWIDTH VERTICAL LINE: looks like "|", is another character to the tokenizer


TAG_NAMES = (
    "think", "tool_call", "tool_response", "tts_pad", "tts_text_bos", "tts_text_eod", "tts_text_bos_single",
)  # fmt: skip
"""The added tokens of the released tokenizers not shaped ``<|...|>``: Qwen2.5-Omni's <tool_call>,
</tool_call>; Qwen3-Omni's also <tool_response>, </tool_response>, <think>, </think>, <tts_pad>,
<tts_text_bos>, <tts_text_eod>, <tts_text_bos_single> (tests/data/test_prompts.py pins both lists)."""
TAG_TOKEN = re.compile(rf"</?(?:{'|'.join(TAG_NAMES)})>")
ROW_TOKEN = re.compile(f"{CONTROL_TOKEN.pattern}|{TAG_TOKEN.pattern}")
"""Every spelling of a family's added token in row text: what ``data check`` reports."""
ESCAPED_LT = "\uff1c"  # FULLWIDTH LESS-THAN SIGN: "<think>" reads the same, matches no token


def escape_tag_tokens(text: str) -> str:
    """``text`` with the "<" of every added tag token (``<think>``, ``</tool_call>``, ...) written
    fullwidth. One list for both families, as the data layer knows none: in a family whose
    tokenizer lacks a tag it only changes how one character looks.

    >>> escape_tag_tokens("Is </think> a tag? <thinking> is not")
    'Is \uff1c/think> a tag? <thinking> is not'
    """
    return TAG_TOKEN.sub(lambda m: ESCAPED_LT + m.group()[1:], text)


def escape_row_text(text: str) -> str:
    """Both escapes: what a row's question and options become in every prompt."""
    return escape_control_tokens(escape_tag_tokens(text))


def escape_control_tokens(text: str) -> str:
    """``text`` with every ``<|`` written ``<\uff5c`` (a fullwidth bar), so no tokenizer matches a token.

    Why here and by pattern: the data layer renders row text into prompts and knows no model family,
    and every special token of Qwen2.5-Omni and Qwen3-Omni starts with ``<|``; breaking that pair
    breaks them all (and any a later family of the same style adds), with no tokenizer at hand. The
    engine would be too late: by then the chat template has joined row text and real control tokens.
    A lookalike rather than removal: the question still reads the same to the model and in reports.

    >>> escape_control_tokens("What is <|IMAGE|>?<|im_end|>")
    'What is <｜IMAGE|>?<｜im_end|>'
    """
    return text.replace("<|", "<" + ESCAPED_BAR)


def question_with_options(sample: Sample, separator: str = paper.TRAIN_OPTIONS_SEPARATOR) -> str:
    return sample.question + separator + "\n".join(sample.options)


MULTI_ANSWER = (
    "Please provide all correct option letters, separated by commas (e.g., A, C), "
    "within the <answer> </answer> tags."
)


def answer_instruction(sample: Sample, single: str) -> str:
    """The template's own one-letter instruction ``single``, or, for a row with several correct
    options, ``MULTI_ANSWER``, which asks for all of them.

    A multi-answer row scores only when every correct letter is given (the accuracy reward compares
    sets), so a prompt demanding "only the single option letter" would make obeying it always wrong.

    >>> from echoink.data.schema import Sample
    >>> row = Sample("1", "q", ("A. x", "B. y", "C. z"), "A,C", None, None, "text")
    >>> answer_instruction(row, "One letter.") == MULTI_ANSWER
    True
    """
    return MULTI_ANSWER if "," in sample.answer else single


def _paper_type(sample: Sample) -> str:
    """EchoInk's multiple-choice TYPE_TEMPLATE (verbatim), or the all-letters one for a multi-answer row."""
    return answer_instruction(sample, paper.TYPE_TEMPLATE_MULTIPLE_CHOICE.strip()).join((" ", ""))


def _paper_reasoning(sample: Sample) -> str:
    question = question_with_options(sample, paper.TRAIN_OPTIONS_SEPARATOR)
    return paper.QUESTION_TEMPLATE.format(Question=question) + _paper_type(sample)


def _paper_eval(sample: Sample) -> str:
    question = question_with_options(sample, paper.EVAL_OPTIONS_SEPARATOR)
    return paper.QUESTION_TEMPLATE.format(Question=question) + _paper_type(sample)


def _paper_base(sample: Sample) -> str:
    question = question_with_options(sample, paper.EVAL_OPTIONS_SEPARATOR)
    return paper.BASE_QUESTION_TEMPLATE.format(Question=question) + _paper_type(sample)


def _reasoning_short(sample: Sample) -> str:
    return (
        question_with_options(sample) + "\n"
        "Please think about this question as if you were a human pondering deeply. "
        "Make sure to carefully consider both the visual and audio information before answering. "
        "Provide your detailed reasoning between the <think> </think> tags, and then give your final "
        "answer between the <answer> </answer> tags. "
        + answer_instruction(
            sample,
            "Please provide only the single option letter (e.g., A, B, C, D, etc.) "
            "within the <answer> </answer> tags.",
        )
    )


def _direct(sample: Sample) -> str:
    single = "Answer with only the single option letter within the <answer> </answer> tags."
    return (
        question_with_options(sample)
        + "\nConsider both the visual and audio information. "
        + answer_instruction(sample, single)
    )


TEMPLATES.register("reasoning")(
    PromptTemplate(_paper_reasoning, None, "EchoInk-R1 training prompt (grpo.py), no system message")
)
TEMPLATES.register("paper_eval")(
    PromptTemplate(_paper_eval, None, "EchoInk-R1 eval script, RL model (options after a newline)")
)
TEMPLATES.register("paper_base")(
    PromptTemplate(_paper_base, paper.BASE_SYSTEM_PROMPT, "EchoInk-R1 eval script, base model")
)
# verl-omni's Qwen3-Omni GSPO AVQA recipe: the instructions in the system turn, the question alone in the
# user turn (its "<image><audio>" markers are our image and audio blocks, which come first as there).
TEMPLATES.register("verl_omni_avqa")(
    PromptTemplate(
        lambda sample: question_with_options(sample, paper.VERL_OMNI_OPTIONS_SEPARATOR),
        paper.VERL_OMNI_AVQA_SYSTEM_PROMPT,
        "verl-omni examples/gspo_trainer/data_process/avqa.py",
    )
)
# echoink's first reasoning prompt: EchoInk's without the inner-dialogue sentences, with Qwen's system
# prompt. The CPU demo was tuned on it and its tiny tokenizer was trained on it, so it stays as it was.
TEMPLATES.register("reasoning_short")(
    PromptTemplate(_reasoning_short, SYSTEM_PROMPT, "echoink (EchoInk's, shortened), Qwen system prompt")
)
# The letter only, still inside <answer> so one parser serves both.
TEMPLATES.register("direct")(PromptTemplate(_direct, SYSTEM_PROMPT, "echoink, Qwen system prompt"))


def load_media(
    sample: Sample,
    max_audio_seconds: float | None = None,
    max_pixels: int | None = None,
    ablate: str = "none",
    *,
    geometry: Geometry,
) -> tuple[np.ndarray | None, Image.Image | None]:
    """Decode a sample's audio and image (on ``geometry``'s grid). ``ablate``: "audio" -> silence of equal
    length, "image" -> blank of equal size."""
    if ablate not in ("none", "audio", "image"):
        raise ValueError(f"ablate must be none, audio or image, got {ablate!r}")
    audio = load_audio(sample.audio, max_audio_seconds).waveform if sample.audio else None
    image = load_image(sample.image, max_pixels, geometry) if sample.image else None
    if ablate == "audio" and audio is not None:
        audio = silence_like(audio)
    if ablate == "image" and image is not None:
        image = blank_like(image)
    return audio, image


def build_messages(
    sample: Sample,
    template: str = "reasoning",
    audio: np.ndarray | None = None,
    image: Image.Image | None = None,
) -> list[dict[str, Any]]:
    """Chat messages: the template's system turn (if any), then the user turn with [image][audio][text] blocks."""
    prompt = TEMPLATES.get(template)
    content: list[dict[str, Any]] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    if audio is not None:
        content.append({"type": "audio", "audio": audio})
    content.append({"type": "text", "text": prompt(sample)})  # row text escaped (PromptTemplate.__call__)
    system = (
        []
        if prompt.system is None
        else [{"role": "system", "content": [{"type": "text", "text": prompt.system}]}]
    )
    return [*system, {"role": "user", "content": content}]
