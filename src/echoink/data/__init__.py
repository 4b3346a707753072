"""The data layer: AVQA-R1-6K-schema rows -> validated Samples -> media -> chat messages."""

from .answers import parse_answer_letters
from .avqa import LoadResult, load_split, read_rows
from .media import SAMPLE_RATE, MediaError, load_audio, load_image
from .messages import sample_messages
from .prompts import SYSTEM_PROMPT, TEMPLATES, build_messages, load_media
from .schema import RowError, Sample

__all__ = [
    "SAMPLE_RATE",
    "SYSTEM_PROMPT",
    "TEMPLATES",
    "LoadResult",
    "MediaError",
    "RowError",
    "Sample",
    "build_messages",
    "load_audio",
    "load_image",
    "load_media",
    "load_split",
    "parse_answer_letters",
    "read_rows",
    "sample_messages",
]
