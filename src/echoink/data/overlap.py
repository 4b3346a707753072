"""Which items of one split also appear in another: contamination, measured.

Two items match when their normalised question and option texts agree (case, accents, punctuation and
spacing ignored; the options compared as a set, so a reordered copy still matches). Where both items
have a medium of the same kind, the files' SHA-256 hashes say whether the media are the very same
files (``identical``) or not (``different``: re-encoded, or another clip with the same question);
``n/a`` when they share no kind. EchoInk-R1's Figure 1 question ("What is this man doing?", options
"Pursuing fugitives." ... "Searching for people in the crowd.") is OmniBench item 7: a model trained
on a split holding it has seen that benchmark item.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..filehash import sha256_file
from .avqa import load_split
from .schema import OPTION_RE, RowError, Sample

_NOT_WORD = re.compile(r"[\W_]+")
_MEDIA = ("audio", "image", "video")


def normalise(text: str) -> str:
    """Lower case, accents and punctuation dropped, words single-spaced.

    >>> normalise("  What is THIS man doing?"), normalise("Café-au-lait.")
    ('what is this man doing', 'cafe au lait')
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def item_key(sample: Sample) -> tuple[str, tuple[str, ...]]:
    """(normalised question, sorted normalised option texts without their letters)."""
    texts = [OPTION_RE.match(o).group(2) for o in sample.options]
    return normalise(sample.question), tuple(sorted(normalise(t) for t in texts))


file_hash = cache(sha256_file)  # a file compared against several items is read once


@dataclass(frozen=True)
class Match:
    id_b: str
    id_a: str
    media: str  # identical / different / n/a


def _media_verdict(a: Sample, b: Sample) -> str:
    """Compare the kinds both items have (hashed only for text matches: videos are large)."""
    kinds = [k for k in _MEDIA if getattr(a, k) is not None and getattr(b, k) is not None]
    if not kinds:
        return "n/a"
    same = all(file_hash(getattr(a, k)) == file_hash(getattr(b, k)) for k in kinds)
    return "identical" if same else "different"


def overlap(a: list[Sample], b: list[Sample]) -> list[Match]:
    """The items of ``b`` whose question + options match an item of ``a`` (the first such item)."""
    index: dict[tuple[str, tuple[str, ...]], Sample] = {}
    for sample in a:
        index.setdefault(item_key(sample), sample)
    return [
        Match(s.id, index[key].id, _media_verdict(index[key], s)) for s in b if (key := item_key(s)) in index
    ]


@dataclass(frozen=True)
class SplitRead:
    """One split as the overlap check read it: how many rows it has, which loaded, which were skipped."""

    path: Path
    rows: int
    samples: list[Sample]
    skipped: list[RowError]

    def line(self) -> str:
        out = f"{self.path}: {self.rows} rows read, {len(self.samples)} compared, {len(self.skipped)} skipped"
        return out + (f" (first: {self.skipped[0].reason})" if self.skipped else "")


class NothingToCompare(ValueError):
    """A split yields no row: "0 items match" would be a false all-clear."""


def read_split(path: str | Path) -> SplitRead:
    """The rows of ``path`` that load (media not checked: only question and options are compared);
    NothingToCompare when none does."""
    loaded = load_split(path, on_error="skip", check_media=False)
    read = SplitRead(Path(path), loaded.rows, loaded.samples, loaded.skipped)
    if not read.samples:
        first = f" (first: {read.skipped[0].reason})" if read.skipped else ""
        raise NothingToCompare(
            f"{path}: none of its {read.rows} rows could be read{first}; with nothing to compare, "
            "no overlap could be found: fix the split"
        )
    return read


def split_overlap_counted(path_a: str | Path, path_b: str | Path) -> tuple[list[Match], list[SplitRead]]:
    """``overlap`` of two split files, with what was read of each (``data overlap`` prints it)."""
    reads = [read_split(path_a), read_split(path_b)]
    return overlap(reads[0].samples, reads[1].samples), reads


def split_overlap(path_a: str | Path, path_b: str | Path) -> list[Match]:
    """``overlap`` of two split files (rows that do not load are left out, as evaluation leaves them out)."""
    a = load_split(path_a, on_error="skip", check_media=False).samples
    b = load_split(path_b, on_error="skip", check_media=False).samples
    return overlap(a, b)
