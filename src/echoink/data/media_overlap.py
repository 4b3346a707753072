"""Which items of one split use the same media content as another's: leakage that no question text shows.

AVQA-R1-6K's training split shares image or audio files with its validation split under other
questions (verl-omni's strict loader drops 56 of 4,491 training rows for it). Two media match when
their files' SHA-256 agree, whatever their names or folders; an audio file matches an audio file, an
image an image, a video a video. ``strict_split`` writes a training split without the rows whose media
appear in the other split (``echoink data check TRAIN --strict-against VAL``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..filehash import sha256_file
from .avqa import load_split, read_rows, split_file
from .schema import Sample

MEDIA_KINDS = ("audio", "image", "video")


@dataclass(frozen=True)
class MediaMatch:
    id_b: str
    id_a: str
    kind: str  # audio / image / video
    sha256: str


def media_index(
    samples: list[Sample], hashes: dict[Path, str | None] | None = None
) -> dict[tuple[str, str], str]:
    """(kind, content SHA-256) -> the id of the first sample holding it; ``hashes`` caches file hashes."""
    hashes = {} if hashes is None else hashes
    index: dict[tuple[str, str], str] = {}
    for s in samples:
        for kind in MEDIA_KINDS:
            if digest := _hash(getattr(s, kind), hashes):
                index.setdefault((kind, digest), s.id)
    return index


def _hash(path: str | Path | None, hashes: dict[Path, str | None]) -> str | None:
    """The file's content SHA-256, once per path; None for no medium or a missing file (``data check``
    reports those)."""
    if path is None:
        return None
    path = Path(path)
    if path not in hashes:
        hashes[path] = sha256_file(path) if path.is_file() else None
    return hashes[path]


def media_overlap(a: list[Sample], b: list[Sample]) -> list[MediaMatch]:
    """One match per (item of ``b``, medium) whose content some item of ``a`` also holds."""
    hashes: dict[Path, str | None] = {}
    index = media_index(a, hashes)
    found = []
    for s in b:
        for kind in MEDIA_KINDS:
            digest = _hash(getattr(s, kind), hashes)
            if digest is not None and (kind, digest) in index:
                found.append(MediaMatch(s.id, index[kind, digest], kind, digest))
    return found


def _samples(path: str | Path) -> list[Sample]:
    return load_split(path, on_error="skip", check_media=False).samples


def overlap_report(path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """Text matches (``overlap.split_overlap``) and media matches of B against A, reported apart."""
    from .overlap import split_overlap

    text = split_overlap(path_a, path_b)
    media = media_overlap(_samples(path_a), _samples(path_b))
    media_ids, text_ids = {m.id_b for m in media}, {m.id_b for m in text}
    return {
        "a": str(path_a),
        "b": str(path_b),
        "text": {"items": len(text_ids), "matches": [asdict(m) for m in text]},
        "media": {
            "items": len(media_ids),
            "by_kind": {k: len({m.id_b for m in media if m.kind == k}) for k in MEDIA_KINDS},
            "media_only": len(media_ids - text_ids),
            "matches": [asdict(m) for m in media],
        },
    }


def format_overlap_report(report: dict[str, Any]) -> list[str]:
    """The report as lines: text matches, then media matches (by kind, and how many have other text)."""
    text, media = report["text"], report.get("media")
    lines = [
        f"text: {text['items']} item(s) of {report['b']} match an item of {report['a']} (question + options)"
    ]
    lines += [f"  {m['id_b']}  = A's {m['id_a']}  (media: {m['media']})" for m in text["matches"]]
    if media is None:
        return lines
    kinds = ", ".join(f"{k} {n}" for k, n in media["by_kind"].items() if n)
    lines.append(
        f"media: {media['items']} item(s) of B use a medium of A by content ({kinds or 'none'}); "
        f"{media['media_only']} of them with other question text"
    )
    lines += [
        f"  {m['id_b']}  {m['kind']} = A's {m['id_a']}  (sha256 {m['sha256'][:12]})" for m in media["matches"]
    ]
    return lines


def strict_split(train: str | Path, other: str | Path, out: str | Path) -> tuple[int, int]:
    """Write ``out``: ``train``'s rows without those whose media content appears in ``other``;
    (rows kept, rows dropped). ``out`` lies in ``train``'s folder (media paths stay relative to it);
    rows that do not load are kept as they are (``data check`` lists them)."""
    train, out = split_file(train), Path(out)
    if out.resolve().parent != train.resolve().parent:
        raise UserError(
            f"{out}: a strict split goes beside {train} (its media paths are relative to that folder)"
        )
    if out.resolve() in (train.resolve(), Path(other).resolve()):
        raise UserError(f"{out}: would overwrite an input split; name another file")
    loaded = load_split(train, on_error="skip", check_media=False)
    shared = {m.id_b for m in media_overlap(_samples(other), loaded.samples)}
    drop = {loaded.row_of[i] for i in shared}
    rows = read_rows(train)
    kept = [r for n, r in enumerate(rows) if n not in drop]
    out.write_text(json.dumps(kept, indent=1, ensure_ascii=False), encoding="utf-8")
    return len(kept), len(rows) - len(kept)
