"""Qwen Omni-style tokenizers trained locally: byte-level BPE, Qwen2's pre-tokenizer, each family's special tokens.

No tokenizer can be downloaded here, so the tiny models get their own, trained in well under a second
on text covering the package's prompt templates and the procedural benchmark's vocabulary. Each has
the real one's layout: ordinary BPE ids first, then the special tokens in the family's order, the
attributes (``image_token``, ``audio_bos_token``, ...) the real processor reads, and a chat template
with the family's media markers (``QWEN2_5_OMNI_TOKENS``, ``QWEN3_OMNI_TOKENS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

from echoink.data.prompts import SYSTEM_PROMPT, TEMPLATES
from echoink.data.schema import Sample
from echoink.errors import UserError

# (content, special) in Qwen2.5-Omni's id order (151643...); <tool_call>/fim tokens are plain added tokens there.
OMNI_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|AUDIO|>", True),
    ("<|audio_bos|>", True),
    ("<|audio_eos|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_bos|>", True),
    ("<|vision_eos|>", True),
    ("<|vision_pad|>", True),
    ("<|IMAGE|>", True),
    ("<|VIDEO|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)

# Tokenizer attributes Qwen2_5OmniProcessor.__init__ reads (it also reads ``<name>_id``).
OMNI_TOKEN_ROLES: dict[str, str] = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}


def chat_template(default_system: str | None, image: str, audio: str, video: str) -> str:
    """A Qwen Omni chat template: an optional default system turn, media blocks as start/placeholder/end
    (the processor expands the placeholder to one token per feature), <|im_start|>assistant\n to generate."""
    system = (
        "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
        + default_system
        + "<|im_end|>\n{% endif %}"
        if default_system is not None
        else ""
    )
    return (
        "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
        "{% set video_count = namespace(value=0) %}"
        "{% for message in messages %}" + system + "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
        "{% else %}{% for content in message['content'] %}"
        "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
        "{% set image_count.value = image_count.value + 1 %}"
        "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}" + image + ""
        "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
        "{% set audio_count.value = audio_count.value + 1 %}"
        "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}" + audio + ""
        "{% elif content['type'] == 'video' or 'video' in content %}"
        "{% set video_count.value = video_count.value + 1 %}"
        "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}" + video + ""
        "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
        "{% endfor %}<|im_end|>\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


# Qwen2.5-Omni's layout: a default system turn, <|vision_bos|><|IMAGE|><|vision_eos|>, <|audio_bos|>...
CHAT_TEMPLATE = chat_template(
    "You are a helpful assistant.",
    "<|vision_bos|><|IMAGE|><|vision_eos|>",
    "<|audio_bos|><|AUDIO|><|audio_eos|>",
    "<|vision_bos|><|VIDEO|><|vision_eos|>",
)


@dataclass(frozen=True)
class TokenSet:
    """A family's added tokens (content, special) in id order, processor roles, chat template."""

    added: tuple[tuple[str, bool], ...]
    roles: dict[str, str]
    template: str


QWEN2_5_OMNI_TOKENS = TokenSet(OMNI_ADDED_TOKENS, OMNI_TOKEN_ROLES, CHAT_TEMPLATE)

# Qwen3's vocabulary order (151643...): Qwen2-VL's vision tokens, tool/fim tokens, <think>, then audio.
QWEN3_OMNI_TOKENS = TokenSet(
    added=(
        ("<|endoftext|>", True),
        ("<|im_start|>", True),
        ("<|im_end|>", True),
        ("<|object_ref_start|>", True),
        ("<|object_ref_end|>", True),
        ("<|box_start|>", True),
        ("<|box_end|>", True),
        ("<|quad_start|>", True),
        ("<|quad_end|>", True),
        ("<|vision_start|>", True),
        ("<|vision_end|>", True),
        ("<|vision_pad|>", True),
        ("<|image_pad|>", True),
        ("<|video_pad|>", True),
        ("<tool_call>", False),
        ("</tool_call>", False),
        ("<|fim_prefix|>", False),
        ("<|fim_middle|>", False),
        ("<|fim_suffix|>", False),
        ("<|fim_pad|>", False),
        ("<|repo_name|>", False),
        ("<|file_sep|>", False),
        ("<|audio_start|>", True),
        ("<|audio_end|>", True),
        ("<|audio_pad|>", True),
    ),
    roles={
        "image_token": "<|image_pad|>",
        "audio_token": "<|audio_pad|>",
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
    },
    # Qwen3-Omni's template adds no default system turn.
    template=chat_template(
        None,
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|audio_start|><|audio_pad|><|audio_end|>",
        "<|vision_start|><|video_pad|><|vision_end|>",
    ),
)


# Words the procedural benchmark and typical reasoning traces use; each appears in the corpus.
BENCHMARK_WORDS: tuple[str, ...] = (
    "red green blue yellow orange purple black white grey gray pink brown cyan magenta",
    "circle square triangle star rectangle diamond hexagon ellipse cross dot shape shapes",
    "left middle right top bottom centre center upper lower first second third last position",
    "zero one two three four five six seven eight nine ten eleven twelve hundred",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 100 200 300 440 500 880 1000 Hz kHz seconds second",
    "tone tones beep beeps sweep sweeps rising falling high low pitch loud quiet silence silent noise",
    "sound sounds audio clip image picture frame object objects hear heard see seen count many how",
    "None of them",
    "none of the above",
    "all of them",
    "both",
    "neither",
    "Wait",
    "wait",
    "Yes yes No no True False same different louder higher lower longer shorter before after",
    "Which What Where How many Is Are Does Do the a an of in on at with and or not is are was were",
    "The answer is",
    "So the answer is",
    "Let me think",
    "Hmm",
    "Actually",
    "Therefore",
    "because",
    "I hear a rising tone and see a red circle on the left.",
    "The beep is high, so it matches the object in the middle.",
    "Wait, the sweep is falling, not rising. Let me check again.",
)

_OPTION_LETTERS = "ABCDEFGH"


# Frozen, not TEMPLATES.names(): a template added later must not move the tiny vocabulary (and every
# tiny-model number with it). These two are the templates the corpus was first built from, in that order.
CORPUS_TEMPLATES = ("direct", "reasoning_short")


def _template_lines() -> list[str]:
    """The corpus templates rendered on a benchmark-like question (covers their wording)."""
    words = ("the red circle", "the blue square", "the green triangle", "None of them")
    options = tuple(f"{letter}. {word}" for letter, word in zip("ABCD", words, strict=True))
    sample = Sample("corpus", "Which object makes the rising tone?", options, "A", None, None, "image_audio")
    return [TEMPLATES.get(name)(sample) for name in CORPUS_TEMPLATES]


def default_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: system prompt, templates, benchmark words, answer formats."""
    lines = [SYSTEM_PROMPT, "You are a helpful assistant.", *_template_lines(), *BENCHMARK_WORDS]
    for letter in _OPTION_LETTERS:
        lines += [f"{letter}.", f"({letter})", f"<answer>{letter}</answer>", f"Option {letter}"]
    lines += [
        "<think>I hear a tone and see shapes.</think>\n<answer>B</answer>",
        "<think> </think> <answer> </answer> <think></think><answer></answer>",
        "system user assistant",
        *(f"{role}\n" for role in ("system", "user", "assistant")),  # as the chat template splits them
    ]
    return lines


def train_tokenizer(
    vocab_size: int, extra_corpus: Iterable[str] = (), tokens: TokenSet = QWEN2_5_OMNI_TOKENS
) -> PreTrainedTokenizerBase:
    """Byte-level BPE with at most ``vocab_size`` ids (BPE ids + the family's added tokens), as a transformers tokenizer.

    Deterministic: the same corpus, size and token set give the same vocabulary and merges.
    """
    n_added = len(tokens.added)
    if vocab_size < 256 + n_added:
        raise UserError(
            f"vocab_size must be >= {256 + n_added} (byte alphabet + special tokens), got {vocab_size}"
        )
    raw = Tokenizer(models.BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_added,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator([*default_corpus(), *extra_corpus], trainer=trainer)
    # Added after training so they take the last ids, as in the real vocabulary.
    raw.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in tokens.added])
    return Qwen2Tokenizer(
        tokenizer_object=raw,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=dict(tokens.roles),
        chat_template=tokens.template,
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )
